//! Date and time helpers shared by both expression dialects.
//!
//! Everything here is a pure function over `chrono` values in UTC. The semantics follow the .NET
//! and Visual Basic runtime functions that Microsoft's sync engines are built on:
//!
//! * [`parse_date`]: the lenient parser behind `CDate` (en-US / invariant, like
//!   `DateTime.Parse`), plus AD generalized time.
//! * [`format_dotnet`] / [`parse_dotnet_exact`]: .NET custom and standard date and time format
//!   strings (invariant culture), used by `FormatDateTime` in both dialects.
//! * [`format_provisioning`] / [`format_iso`]: the textual forms of a date.
//! * [`date_add`] / [`date_diff`]: `Microsoft.VisualBasic.DateAndTime.DateAdd` / `DateDiff`.
//! * [`filetime_to_date`] / [`date_to_filetime`]: AD FILETIME (`DateFromNum` / `NumFromDate`).
//!
//! All results stay inside the .NET `DateTime` range, 0001-01-01 00:00:00 to
//! 9999-12-31 23:59:59.9999999 UTC, with a precision of 100 ns (one .NET tick); anything that
//! would leave that range is an error, never a panic.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Timelike, Utc};

/// 100-ns ticks per second.
const TICKS_PER_SECOND: i64 = 10_000_000;
/// Seconds from 1601-01-01T00:00:00Z (the FILETIME epoch) to the Unix epoch.
const FILETIME_EPOCH_OFFSET_SECS: i64 = 11_644_473_600;
/// FILETIME of 9999-12-31 23:59:59.9999999 UTC, the last value .NET accepts.
const MAX_FILETIME: i64 = 2_650_467_743_999_999_999;
/// Largest accepted UTC offset, in minutes (14:00, as in .NET `DateTimeOffset`).
const MAX_OFFSET_MINUTES: i64 = 14 * 60;

const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const MONTH_ABBREVIATIONS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
/// Day names, Sunday first (index = `num_days_from_sunday`).
const DAY_NAMES: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const DAY_ABBREVIATIONS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

// ------------------------------------------------------------------------------------------------
// Shared helpers
// ------------------------------------------------------------------------------------------------

fn is_leap_year(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Converts a one- or two-digit year with the invariant culture's `TwoDigitYearMax` of 2049.
fn expand_two_digit_year(year: i64) -> i64 {
    if year <= 49 {
        2000 + year
    } else {
        1900 + year
    }
}

/// Accepts a date only when it lies in the .NET `DateTime` range (years 1 to 9999).
fn in_dotnet_range(dt: DateTime<Utc>) -> bool {
    (1..=9999).contains(&dt.year())
}

/// Builds a UTC instant from validated civil fields and an offset (local = UTC + offset).
#[allow(clippy::too_many_arguments)]
fn build_utc(
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    ticks: i64,
    offset_minutes: i64,
) -> Result<DateTime<Utc>, String> {
    if !(1..=9999).contains(&year) {
        return Err(format!("year {year} is out of range (expected 1 to 9999)"));
    }
    if !(1..=12).contains(&month) {
        return Err(format!("month {month} is out of range"));
    }
    // Both values were range-checked just above, so the casts are lossless.
    let (y, m) = (year as i32, month as u32);
    let dim = i64::from(days_in_month(y, m));
    if day < 1 || day > dim {
        return Err(format!(
            "day {day} is out of range for {} {y} (it has {dim} days)",
            MONTH_NAMES[(m - 1) as usize]
        ));
    }
    if !(0..=23).contains(&hour) {
        return Err(format!("hour {hour} is out of range"));
    }
    if !(0..=59).contains(&minute) {
        return Err(format!("minute {minute} is out of range"));
    }
    if !(0..=59).contains(&second) {
        return Err(format!("second {second} is out of range"));
    }
    let date = NaiveDate::from_ymd_opt(y, m, day as u32)
        .ok_or_else(|| format!("{y}-{m:02}-{day:02} is not a valid date"))?;
    let time = NaiveTime::from_hms_nano_opt(
        hour as u32,
        minute as u32,
        second as u32,
        (ticks * 100) as u32,
    )
    .ok_or_else(|| "the time of day is not valid".to_string())?;
    let local = NaiveDateTime::new(date, time).and_utc();
    let utc = local
        .checked_sub_signed(TimeDelta::minutes(offset_minutes))
        .filter(|dt| in_dotnet_range(*dt))
        .ok_or_else(|| "converted to UTC it falls outside 0001-01-01 to 9999-12-31".to_string())?;
    Ok(utc)
}

/// The sub-second part of `dt` in .NET ticks (0 to 9,999,999); leap-second nanos are folded.
fn sub_second_ticks(dt: DateTime<Utc>) -> i64 {
    i64::from(dt.nanosecond() % 1_000_000_000) / 100
}

fn pow10(n: usize) -> i64 {
    10_i64.pow(n as u32)
}

fn find_name(names: &[&str], word: &str) -> Option<usize> {
    names.iter().position(|n| n.eq_ignore_ascii_case(word))
}

/// Month number (1-12) for a full or three-letter English month name, case-insensitive.
fn month_from_word(word: &str) -> Option<i64> {
    find_name(&MONTH_NAMES, word)
        .or_else(|| find_name(&MONTH_ABBREVIATIONS, word))
        .map(|i| i as i64 + 1)
}

/// Day of week (0 = Sunday) for a full or three-letter English day name, case-insensitive.
fn day_name_index(word: &str) -> Option<usize> {
    find_name(&DAY_NAMES, word).or_else(|| find_name(&DAY_ABBREVIATIONS, word))
}

// ------------------------------------------------------------------------------------------------
// Lenient parsing (CDate)
// ------------------------------------------------------------------------------------------------

/// Parses a date/time string the way `CDate` does in both dialects and returns it in UTC.
///
/// Modelled on .NET `DateTime.Parse` with the en-US / invariant culture, adjusted to universal
/// time. Accepted shapes:
///
/// * ISO 8601: `2012-01-01`, `2012-01-01T23:00:00Z`, `2012-01-01 23:00:00`, fractional seconds
///   (`23:00:00.1234567`; digits past the seventh are truncated), offsets `+08:00`, `-0700`,
///   `-7`, and the Workday/provisioning forms where the offset follows the date directly
///   (`2021-06-30+08:00`, `2012-03-16-07:00`) or the time directly (`23:59:59-08:00`).
/// * US forms `12/25/2007`, `3/16/2020 7:00:00 AM`, `1/11/2013 12:00 AM` (month first; `-` and
///   `.` work as separators too; two-digit years use the .NET 2049 pivot: `13` = 2013,
///   `50` = 1950).
/// * Month names: `January 10, 2013`, `Jan 10 2013`, `10 Jan 2013`, `10-Jan-2013`, optionally
///   preceded by a day name (`Thu, 10 Jan 2013 16:00:00 GMT`).
/// * Times `H:mm`, `H:mm:ss[.f…]`, `4 PM`, with `AM`/`PM`/`A`/`P` (`12 AM` = 00:00, `12 PM` =
///   noon), then an optional zone: `Z`, `UTC`, `GMT` (optionally followed by an offset) or a
///   signed offset whose hours may stand alone, as in the Connect example
///   `2013-01-10 4:00 PM -8` (= 2013-01-11 00:00 UTC). Offsets are limited to ±14:00.
/// * AD generalized time `YYYYMMDDHHMMSS[.f…](Z|±hhmm)`, e.g. `20150123105347.1Z`.
///
/// Text without a zone is taken as UTC. Leading and trailing white space is ignored. A time
/// without a date (`4:00 PM`) is rejected rather than silently dated "today", so results never
/// depend on the clock. The result must lie in 0001-01-01..9999-12-31 after conversion to UTC.
///
/// # Errors
///
/// A message naming the input and what was wrong, e.g.
/// `cannot read "2013-13-45" as a date: month 13 is out of range`.
pub fn parse_date(text: &str) -> Result<DateTime<Utc>, String> {
    let fail = |why: String| format!("cannot read {text:?} as a date: {why}");
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(fail("the text is empty".to_string()));
    }
    if let Some(result) = parse_generalized_time(trimmed) {
        return result.map_err(fail);
    }
    let tokens = tokenize(trimmed).map_err(fail)?;
    let mut parser = Lenient {
        toks: tokens,
        pos: 0,
    };
    parser.parse().map_err(fail)
}

/// AD generalized time (`20150123105347.1Z`, `20150123105347.0-0700`); `None` if the text does
/// not have that shape at all.
fn parse_generalized_time(s: &str) -> Option<Result<DateTime<Utc>, String>> {
    let b = s.as_bytes();
    if b.len() < 14 || !b[..14].iter().all(u8::is_ascii_digit) {
        return None;
    }
    if b.get(14).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> i64 {
        b[r].iter()
            .fold(0_i64, |acc, d| acc * 10 + i64::from(d - b'0'))
    };
    let (year, month, day) = (num(0..4), num(4..6), num(6..8));
    let (hour, minute, second) = (num(8..10), num(10..12), num(12..14));
    let mut i = 14;
    let mut ticks = 0_i64;
    if matches!(b.get(i), Some(b'.') | Some(b',')) {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return Some(Err("expected digits after the decimal point".to_string()));
        }
        ticks = fraction_ticks(&s[start..i]);
    }
    let rest = &s[i..];
    let offset = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let (sign, digits) = match rest.as_bytes()[0] {
                b'+' => (1, &rest[1..]),
                b'-' => (-1, &rest[1..]),
                _ => return Some(Err(format!("unexpected text {rest:?} after the time"))),
            };
            if digits.len() != 4 || !digits.bytes().all(|d| d.is_ascii_digit()) {
                return Some(Err(format!("the offset {rest:?} is not of the form +hhmm")));
            }
            let (h, m) = (num_str(&digits[..2]), num_str(&digits[2..]));
            match check_offset(sign, h, m) {
                Ok(o) => o,
                Err(e) => return Some(Err(e)),
            }
        }
    };
    Some(build_utc(
        year, month, day, hour, minute, second, ticks, offset,
    ))
}

fn num_str(digits: &str) -> i64 {
    digits.bytes().fold(0_i64, |acc, d| {
        acc.saturating_mul(10).saturating_add(i64::from(d - b'0'))
    })
}

/// Ticks for a string of fraction digits (`"1"` = 0.1 s); digits past the seventh are dropped.
fn fraction_ticks(digits: &str) -> i64 {
    let kept = &digits[..digits.len().min(7)];
    num_str(kept) * pow10(7 - kept.len())
}

fn check_offset(sign: i64, hours: i64, minutes: i64) -> Result<i64, String> {
    if minutes >= 60 {
        return Err(format!("offset minutes {minutes} are out of range"));
    }
    let total = hours * 60 + minutes;
    if total > MAX_OFFSET_MINUTES {
        return Err(format!(
            "the offset {hours}:{minutes:02} is larger than 14:00"
        ));
    }
    Ok(sign * total)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A run of ASCII digits (kept as text: leading zeros matter for fractions).
    Num(String),
    /// A run of letters.
    Word(String),
    /// One of `- / . : , +`.
    Punct(char),
    /// A run of white space.
    Space,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_ascii_digit() {
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            out.push(Tok::Num(chars[start..i].iter().collect()));
        } else if c.is_alphabetic() {
            while i < chars.len() && chars[i].is_alphabetic() {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else if c.is_whitespace() {
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            out.push(Tok::Space);
        } else if matches!(c, '-' | '/' | '.' | ':' | ',' | '+') {
            out.push(Tok::Punct(c));
            i += 1;
        } else if c == '\u{2212}' {
            // U+2212 MINUS SIGN, accepted by .NET as a negative sign.
            out.push(Tok::Punct('-'));
            i += 1;
        } else {
            return Err(format!("unexpected character {c:?}"));
        }
    }
    Ok(out)
}

struct Lenient {
    toks: Vec<Tok>,
    pos: usize,
}

#[derive(Default)]
struct TimeOfDay {
    hour: i64,
    minute: i64,
    second: i64,
    ticks: i64,
}

impl Lenient {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn describe_here(&self) -> String {
        match self.peek() {
            None => "the end of the text".to_string(),
            Some(Tok::Num(n)) => format!("{n:?}"),
            Some(Tok::Word(w)) => format!("{w:?}"),
            Some(Tok::Punct(c)) => format!("{:?}", c.to_string()),
            Some(Tok::Space) => "white space".to_string(),
        }
    }

    fn skip_space(&mut self) -> bool {
        if self.peek() == Some(&Tok::Space) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_punct(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Punct(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn take_num(&mut self) -> Option<String> {
        if let Some(Tok::Num(n)) = self.peek() {
            let n = n.clone();
            self.pos += 1;
            Some(n)
        } else {
            None
        }
    }

    fn take_word(&mut self) -> Option<String> {
        if let Some(Tok::Word(w)) = self.peek() {
            let w = w.clone();
            self.pos += 1;
            Some(w)
        } else {
            None
        }
    }

    fn expect_num(&mut self, what: &str, max_digits: usize) -> Result<String, String> {
        match self.take_num() {
            Some(n) if n.len() <= max_digits => Ok(n),
            Some(n) => Err(format!("{n:?} has too many digits for {what}")),
            None => Err(format!("expected {what}, found {}", self.describe_here())),
        }
    }

    fn parse(&mut self) -> Result<DateTime<Utc>, String> {
        // Optional leading day name: "Thursday, January 10, 2013", "Thu, 10 Jan 2013".
        let mut day_name: Option<usize> = None;
        if let Some(Tok::Word(w)) = self.peek() {
            if let Some(idx) = day_name_index(w) {
                day_name = Some(idx);
                self.pos += 1;
                self.eat_punct(',');
                self.skip_space();
            }
        }
        // A time may come first, as in "4:00 PM 1/10/2013".
        let mut time: Option<TimeOfDay> = None;
        if matches!(self.peek(), Some(Tok::Num(_))) && self.looks_like_time() {
            time = Some(self.time()?);
            self.skip_space();
            self.eat_punct(',');
            self.skip_space();
            if self.pos >= self.toks.len() {
                return Err("it has a time but no date".to_string());
            }
        }
        let (year, month, day) = self.date()?;
        let mut offset: Option<i64> = self.zone()?;
        if offset.is_none() && time.is_none() {
            let save = self.pos;
            let separated = match self.peek() {
                Some(Tok::Word(w)) if w.eq_ignore_ascii_case("T") => {
                    self.pos += 1;
                    true
                }
                Some(Tok::Space) => {
                    self.pos += 1;
                    true
                }
                Some(Tok::Punct(',')) => {
                    self.pos += 1;
                    self.skip_space();
                    true
                }
                _ => false,
            };
            if separated && matches!(self.peek(), Some(Tok::Num(_))) {
                time = Some(self.time()?);
            } else {
                self.pos = save;
            }
        }
        if offset.is_none() {
            let before_zone = self.pos;
            self.skip_space();
            offset = self.zone()?;
            if offset.is_none() {
                self.pos = before_zone;
            }
        }
        self.skip_space();
        if self.pos < self.toks.len() {
            return Err(format!(
                "unexpected {} after the date",
                self.describe_here()
            ));
        }
        let time = time.unwrap_or_default();
        let local = build_utc(
            year,
            month,
            day,
            time.hour,
            time.minute,
            time.second,
            time.ticks,
            0,
        )?;
        if let Some(expected) = day_name {
            let actual = local.weekday().num_days_from_sunday() as usize;
            if actual != expected {
                return Err(format!(
                    "{year:04}-{month:02}-{day:02} is a {}, not a {}",
                    DAY_NAMES[actual], DAY_NAMES[expected]
                ));
            }
        }
        build_utc(
            year,
            month,
            day,
            time.hour,
            time.minute,
            time.second,
            time.ticks,
            offset.unwrap_or(0),
        )
    }

    /// A number followed by `:` (or by an AM/PM word) starts a time, not a date.
    fn looks_like_time(&self) -> bool {
        match self.toks.get(self.pos + 1) {
            Some(Tok::Punct(':')) => true,
            Some(Tok::Word(w)) => ampm(w).is_some(),
            Some(Tok::Space) => {
                matches!(self.toks.get(self.pos + 2), Some(Tok::Word(w)) if ampm(w).is_some())
            }
            _ => false,
        }
    }

    fn year_value(digits: &str) -> Result<i64, String> {
        if digits.len() > 4 {
            return Err(format!(
                "year {digits} is out of range (expected 1 to 9999)"
            ));
        }
        let y = num_str(digits);
        Ok(if digits.len() <= 2 {
            expand_two_digit_year(y)
        } else {
            y
        })
    }

    fn date(&mut self) -> Result<(i64, i64, i64), String> {
        match self.peek().cloned() {
            Some(Tok::Num(first)) if first.len() >= 3 => {
                // Year first: 2012-01-01, 2012/1/1, 2012.01.01, 2012-Jan-01.
                self.pos += 1;
                let year = Self::year_value(&first)?;
                let sep = self.date_separator()?;
                let month = self.month_part()?;
                if !self.eat_punct(sep) {
                    return Err(format!(
                        "expected {sep:?} before the day, found {}",
                        self.describe_here()
                    ));
                }
                let day = num_str(&self.expect_num("a day", 2)?);
                Ok((year, month, day))
            }
            Some(Tok::Num(first)) => {
                self.pos += 1;
                let a = num_str(&first);
                if let Some(Tok::Punct(sep @ ('/' | '-' | '.'))) = self.peek().cloned() {
                    self.pos += 1;
                    if let Some(word) = self.take_word() {
                        // 10-Jan-2013
                        let month = month_from_word(&word)
                            .ok_or_else(|| format!("{word:?} is not a month name"))?;
                        if !self.eat_punct(sep) {
                            return Err(format!(
                                "expected {sep:?} before the year, found {}",
                                self.describe_here()
                            ));
                        }
                        let year = Self::year_value(&self.expect_num("a year", 4)?)?;
                        return Ok((year, month, a));
                    }
                    // US order: month / day / year.
                    let day = num_str(&self.expect_num("a day", 2)?);
                    if !self.eat_punct(sep) {
                        return Err(format!(
                            "expected {sep:?} and a year after the day, found {}",
                            self.describe_here()
                        ));
                    }
                    let year = Self::year_value(&self.expect_num("a year", 4)?)?;
                    return Ok((year, a, day));
                }
                // 10 Jan 2013, 10 January, 2013
                self.skip_space();
                let word = self.take_word().ok_or_else(|| {
                    format!(
                        "expected a date separator or a month name, found {}",
                        self.describe_here()
                    )
                })?;
                let month = month_from_word(&word)
                    .ok_or_else(|| format!("{word:?} is not a month name"))?;
                self.eat_punct(',');
                self.skip_space();
                let year = Self::year_value(&self.expect_num("a year", 4)?)?;
                Ok((year, month, a))
            }
            Some(Tok::Word(word)) => {
                // January 10, 2013 / Jan 10 2013
                self.pos += 1;
                let month = month_from_word(&word)
                    .ok_or_else(|| format!("{word:?} is not a month name"))?;
                self.skip_space();
                let day = num_str(&self.expect_num("a day", 2)?);
                self.eat_punct(',');
                self.skip_space();
                let year = Self::year_value(&self.expect_num("a year", 4)?)?;
                Ok((year, month, day))
            }
            _ => Err(format!("expected a date, found {}", self.describe_here())),
        }
    }

    fn date_separator(&mut self) -> Result<char, String> {
        match self.peek() {
            Some(Tok::Punct(c @ ('-' | '/' | '.'))) => {
                let c = *c;
                self.pos += 1;
                Ok(c)
            }
            _ => Err(format!(
                "expected '-' or '/' after the year, found {}",
                self.describe_here()
            )),
        }
    }

    fn month_part(&mut self) -> Result<i64, String> {
        if let Some(word) = self.take_word() {
            return month_from_word(&word).ok_or_else(|| format!("{word:?} is not a month name"));
        }
        Ok(num_str(&self.expect_num("a month", 2)?))
    }

    fn time(&mut self) -> Result<TimeOfDay, String> {
        let mut t = TimeOfDay {
            hour: num_str(&self.expect_num("an hour", 2)?),
            ..Default::default()
        };
        let mut has_minutes = false;
        if self.eat_punct(':') {
            has_minutes = true;
            t.minute = num_str(&self.expect_num("minutes", 2)?);
            if self.eat_punct(':') {
                t.second = num_str(&self.expect_num("seconds", 2)?);
                if self.eat_punct('.') || self.eat_punct(',') {
                    let digits = self.take_num().ok_or_else(|| {
                        format!("expected fraction digits, found {}", self.describe_here())
                    })?;
                    t.ticks = fraction_ticks(&digits);
                }
            }
        }
        let save = self.pos;
        self.skip_space();
        let mark = match self.peek() {
            Some(Tok::Word(w)) => ampm(w),
            _ => None,
        };
        match mark {
            Some(pm) => {
                self.pos += 1;
                t.hour = adjust_hour(t.hour, pm)?;
            }
            None => {
                self.pos = save;
                if !has_minutes {
                    return Err(format!(
                        "expected ':' and minutes after the hour {}, or AM/PM",
                        t.hour
                    ));
                }
            }
        }
        Ok(t)
    }

    /// An optional zone at the current position: `Z`, `UTC`, `GMT[±hh:mm]` or `±h[h][[:]mm]`.
    fn zone(&mut self) -> Result<Option<i64>, String> {
        match self.peek().cloned() {
            Some(Tok::Word(w))
                if ["Z", "UTC", "GMT", "UT"]
                    .iter()
                    .any(|z| z.eq_ignore_ascii_case(&w)) =>
            {
                self.pos += 1;
                if !w.eq_ignore_ascii_case("Z")
                    && matches!(self.peek(), Some(Tok::Punct('+' | '-')))
                {
                    return self.signed_offset().map(Some);
                }
                Ok(Some(0))
            }
            Some(Tok::Punct('+' | '-')) => self.signed_offset().map(Some),
            _ => Ok(None),
        }
    }

    fn signed_offset(&mut self) -> Result<i64, String> {
        let sign = if self.eat_punct('-') {
            -1
        } else if self.eat_punct('+') {
            1
        } else {
            return Err(format!(
                "expected '+' or '-', found {}",
                self.describe_here()
            ));
        };
        let digits = self
            .take_num()
            .ok_or_else(|| format!("expected offset hours, found {}", self.describe_here()))?;
        let (hours, minutes) = match digits.len() {
            1 | 2 => {
                let h = num_str(&digits);
                let m = if self.eat_punct(':') {
                    num_str(&self.expect_num("offset minutes", 2)?)
                } else {
                    0
                };
                (h, m)
            }
            3 | 4 => {
                let split = digits.len() - 2;
                (num_str(&digits[..split]), num_str(&digits[split..]))
            }
            _ => return Err(format!("the offset {digits:?} has too many digits")),
        };
        check_offset(sign, hours, minutes)
    }
}

/// `Some(true)` for PM designators, `Some(false)` for AM ones.
fn ampm(word: &str) -> Option<bool> {
    if word.eq_ignore_ascii_case("AM") || word.eq_ignore_ascii_case("A") {
        Some(false)
    } else if word.eq_ignore_ascii_case("PM") || word.eq_ignore_ascii_case("P") {
        Some(true)
    } else {
        None
    }
}

/// .NET `DateTimeParse.AdjustHour`: AM accepts 0-12 (12 AM = 0), PM accepts 0-23 (adds 12 below
/// noon).
fn adjust_hour(hour: i64, pm: bool) -> Result<i64, String> {
    if pm {
        if hour > 23 {
            return Err(format!("hour {hour} is out of range"));
        }
        Ok(if hour < 12 { hour + 12 } else { hour })
    } else {
        if hour > 12 {
            return Err(format!("hour {hour} cannot be combined with AM"));
        }
        Ok(if hour == 12 { 0 } else { hour })
    }
}

// ------------------------------------------------------------------------------------------------
// Formatting
// ------------------------------------------------------------------------------------------------

/// Formats a date the way the provisioning service prints dates (`CDate`, `DateAdd`, `Now`):
/// .NET `M/d/yyyy h:mm:ss tt` with the invariant culture, e.g. `3/16/2020 7:00:00 AM`,
/// `6/29/2021 4:00:00 PM`, `1/1/2012 12:00:00 AM` (midnight). Fractions of a second are not
/// shown.
pub fn format_provisioning(dt: DateTime<Utc>) -> String {
    let hour12 = match dt.hour() % 12 {
        0 => 12,
        h => h,
    };
    let tt = if dt.hour() < 12 { "AM" } else { "PM" };
    format!(
        "{}/{}/{:04} {}:{:02}:{:02} {}",
        dt.month(),
        dt.day(),
        dt.year(),
        hour12,
        dt.minute(),
        dt.second(),
        tt
    )
}

/// Formats a date as ISO 8601 in UTC: `2012-01-01T23:00:00Z`. Fractional seconds are added only
/// when non-zero, with trailing zeros removed and at most seven digits (.NET tick precision):
/// `2015-01-23T10:53:47.1Z`.
pub fn format_iso(dt: DateTime<Utc>) -> String {
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    let ticks = sub_second_ticks(dt);
    if ticks == 0 {
        format!("{base}Z")
    } else {
        let fraction = format!("{ticks:07}");
        format!("{base}.{}Z", fraction.trim_end_matches('0'))
    }
}

/// Expands a one-character .NET standard date and time format string (invariant culture).
fn expand_standard(c: char) -> Option<&'static str> {
    Some(match c {
        'd' => "MM/dd/yyyy",
        'D' => "dddd, dd MMMM yyyy",
        'f' => "dddd, dd MMMM yyyy HH:mm",
        'F' | 'U' => "dddd, dd MMMM yyyy HH:mm:ss",
        'g' => "MM/dd/yyyy HH:mm",
        'G' => "MM/dd/yyyy HH:mm:ss",
        'M' | 'm' => "MMMM dd",
        'O' | 'o' => "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffffK",
        'R' | 'r' => "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'",
        's' => "yyyy'-'MM'-'dd'T'HH':'mm':'ss",
        't' => "HH:mm",
        'T' => "HH:mm:ss",
        'u' => "yyyy'-'MM'-'dd HH':'mm':'ss'Z'",
        'Y' | 'y' => "yyyy MMMM",
        _ => return None,
    })
}

/// Turns a user format into the pattern actually interpreted: a single character is a standard
/// format (`d`, `o`, …), anything longer is a custom format; empty means `G`.
fn effective_pattern(format: &str) -> Result<Vec<char>, String> {
    let chars: Vec<char> = format.chars().collect();
    match chars.as_slice() {
        [] => Ok(expand_standard('G').unwrap_or_default().chars().collect()),
        [c] => expand_standard(*c)
            .map(|p| p.chars().collect())
            .ok_or_else(|| {
                format!(
                "the format {format:?} is not a standard date format (d D f F g G M m O o R r s t \
                 T u U Y y); write \"%{c}\" to use {c:?} as a custom specifier"
            )
            }),
        _ => Ok(chars),
    }
}

/// Length of the run of `c` starting at `i`.
fn repeat_count(p: &[char], i: usize, c: char) -> usize {
    p[i..].iter().take_while(|&&x| x == c).count()
}

/// Reads a quoted literal starting at the opening quote `p[i]`; returns (text, chars consumed).
/// Inside quotes a backslash escapes the next character, as in .NET `ParseQuoteString`.
fn read_quoted(p: &[char], i: usize, format: &str) -> Result<(String, usize), String> {
    let quote = p[i];
    let mut j = i + 1;
    let mut text = String::new();
    while j < p.len() {
        let c = p[j];
        if c == quote {
            return Ok((text, j + 1 - i));
        }
        if c == '\\' {
            match p.get(j + 1) {
                Some(&next) => {
                    text.push(next);
                    j += 2;
                    continue;
                }
                None => break,
            }
        }
        text.push(c);
        j += 1;
    }
    Err(format!(
        "the format {format:?} has an unterminated quoted literal starting at {quote}"
    ))
}

/// Formats `dt` with a .NET custom or standard date and time format string (invariant culture).
///
/// Custom specifiers: `yyyy yyy yy y` (years; `y`/`yy` are the year modulo 100), `MMMM MMM MM M`,
/// `dddd ddd dd d`, `HH H hh h`, `mm m`, `ss s`, `f`…`fffffff` (fraction digits), `F`…`FFFFFFF`
/// (the same without trailing zeros, and a preceding `.` is dropped when nothing is left), `tt t`
/// (`AM`/`PM`, `A`/`P`), `K` (`Z`, the value is UTC), `z zz zzz` (`+0`, `+00`, `+00:00`), `g`/`gg`
/// (`A.D.`), the separators `:` and `/`, quoted literals `'…'` and `"…"`, `\x` escapes and `%x`
/// (one specifier on its own). Every other character is copied literally; in particular `0`
/// and `Z` are not specifiers, so the out-of-box `"yyyyMMddHHmmss.0Z"` gives `20140905081453.0Z`.
///
/// A one-character format is a standard format: `d` `D` `f` `F` `g` `G` `M`/`m` `O`/`o` `R`/`r`
/// `s` `t` `T` `u` `U` `Y`/`y`; an empty format behaves like `G`.
///
/// # Errors
///
/// Formats .NET rejects with a `FormatException`: an unknown one-character standard format,
/// more than seven `f`/`F`, an unterminated quote, a trailing `\` or `%`, and `%%`.
pub fn format_dotnet(dt: DateTime<Utc>, format: &str) -> Result<String, String> {
    let pattern = effective_pattern(format)?;
    let mut out = String::new();
    format_custom(dt, &pattern, format, &mut out)?;
    Ok(out)
}

fn push_padded(out: &mut String, value: i64, width: usize) {
    out.push_str(&format!("{value:0width$}"));
}

fn format_custom(
    dt: DateTime<Utc>,
    p: &[char],
    format: &str,
    out: &mut String,
) -> Result<(), String> {
    let mut i = 0;
    while i < p.len() {
        let c = p[i];
        let mut len = 1;
        match c {
            'g' => {
                len = repeat_count(p, i, c);
                out.push_str("A.D.");
            }
            'h' => {
                len = repeat_count(p, i, c);
                let h = match dt.hour() % 12 {
                    0 => 12,
                    h => h,
                };
                push_padded(out, i64::from(h), len.min(2));
            }
            'H' | 'm' | 's' => {
                len = repeat_count(p, i, c);
                let v = match c {
                    'H' => dt.hour(),
                    'm' => dt.minute(),
                    _ => dt.second(),
                };
                push_padded(out, i64::from(v), len.min(2));
            }
            'd' => {
                len = repeat_count(p, i, c);
                let dow = dt.weekday().num_days_from_sunday() as usize;
                match len {
                    1 | 2 => push_padded(out, i64::from(dt.day()), len),
                    3 => out.push_str(DAY_ABBREVIATIONS[dow]),
                    _ => out.push_str(DAY_NAMES[dow]),
                }
            }
            'M' => {
                len = repeat_count(p, i, c);
                let m = dt.month0() as usize;
                match len {
                    1 | 2 => push_padded(out, i64::from(dt.month()), len),
                    3 => out.push_str(MONTH_ABBREVIATIONS[m]),
                    _ => out.push_str(MONTH_NAMES[m]),
                }
            }
            'y' => {
                len = repeat_count(p, i, c);
                let year = i64::from(dt.year());
                if len <= 2 {
                    push_padded(out, year.rem_euclid(100), len);
                } else {
                    push_padded(out, year, len);
                }
            }
            'f' | 'F' => {
                len = repeat_count(p, i, c);
                if len > 7 {
                    return Err(format!(
                        "the format {format:?} asks for {len} fraction digits; at most 7 are \
                         allowed"
                    ));
                }
                let mut fraction = sub_second_ticks(dt) / pow10(7 - len);
                if c == 'f' {
                    push_padded(out, fraction, len);
                } else {
                    let mut digits = len;
                    while digits > 0 && fraction % 10 == 0 {
                        fraction /= 10;
                        digits -= 1;
                    }
                    if digits > 0 {
                        push_padded(out, fraction, digits);
                    } else if out.ends_with('.') {
                        out.pop();
                    }
                }
            }
            't' => {
                len = repeat_count(p, i, c);
                let mark = if dt.hour() < 12 { "AM" } else { "PM" };
                out.push_str(if len == 1 { &mark[..1] } else { mark });
            }
            'z' => {
                len = repeat_count(p, i, c);
                out.push_str(match len {
                    1 => "+0",
                    2 => "+00",
                    _ => "+00:00",
                });
            }
            'K' => out.push('Z'),
            ':' | '/' => out.push(c),
            '\'' | '"' => {
                let (text, used) = read_quoted(p, i, format)?;
                out.push_str(&text);
                len = used;
            }
            '%' => match p.get(i + 1) {
                Some(&next) if next != '%' => {
                    format_custom(dt, &[next], format, out)?;
                    len = 2;
                }
                _ => {
                    return Err(format!(
                        "the format {format:?} has a '%' that is not followed by a specifier"
                    ))
                }
            },
            '\\' => match p.get(i + 1) {
                Some(&next) => {
                    out.push(next);
                    len = 2;
                }
                None => return Err(format!("the format {format:?} ends with a lone '\\'")),
            },
            _ => out.push(c),
        }
        i += len;
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Exact parsing (FormatDateTime input format)
// ------------------------------------------------------------------------------------------------

#[derive(Default)]
struct ExactState {
    year: Option<i64>,
    month: Option<i64>,
    day: Option<i64>,
    hour: Option<i64>,
    minute: Option<i64>,
    second: Option<i64>,
    ticks: i64,
    /// `Some(true)` = PM.
    pm: Option<bool>,
    hour12: bool,
    day_of_week: Option<usize>,
    offset: Option<i64>,
}

fn set_once(slot: &mut Option<i64>, value: i64, what: &str) -> Result<(), String> {
    match slot {
        Some(old) if *old != value => Err(format!(
            "the {what} is given twice with different values ({old} and {value})"
        )),
        _ => {
            *slot = Some(value);
            Ok(())
        }
    }
}

struct Input<'a> {
    chars: &'a [char],
    pos: usize,
}

impl Input<'_> {
    fn rest(&self) -> String {
        self.chars[self.pos.min(self.chars.len())..]
            .iter()
            .collect()
    }

    fn found(&self) -> String {
        if self.pos >= self.chars.len() {
            "the end of the text".to_string()
        } else {
            format!("{:?}", self.rest())
        }
    }

    fn eat(&mut self, c: char) -> bool {
        if self.chars.get(self.pos) == Some(&c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_str_ci(&mut self, s: &str) -> bool {
        let want: Vec<char> = s.chars().collect();
        let end = self.pos + want.len();
        if end <= self.chars.len()
            && self.chars[self.pos..end]
                .iter()
                .zip(&want)
                .all(|(a, b)| a.to_lowercase().eq(b.to_lowercase()))
        {
            self.pos = end;
            true
        } else {
            false
        }
    }

    /// Reads between `min` and `max` ASCII digits.
    fn digits(&mut self, min: usize, max: usize, what: &str) -> Result<(i64, usize), String> {
        let start = self.pos;
        let mut value = 0_i64;
        while self.pos - start < max {
            match self.chars.get(self.pos) {
                Some(c) if c.is_ascii_digit() => {
                    value = value
                        .saturating_mul(10)
                        .saturating_add(i64::from(*c as u8 - b'0'));
                    self.pos += 1;
                }
                _ => break,
            }
        }
        let n = self.pos - start;
        if n < min {
            self.pos = start;
            let amount = if min == max {
                format!("{min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(format!(
                "expected {what} ({amount} digits), found {}",
                self.found()
            ));
        }
        Ok((value, n))
    }

    /// Longest case-insensitive match among `names`; returns its index.
    fn name(&mut self, names: &[&str]) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None;
        for (idx, name) in names.iter().enumerate() {
            let save = self.pos;
            if self.eat_str_ci(name) {
                let len = self.pos - save;
                if best.is_none_or(|(_, l)| len > l) {
                    best = Some((idx, len));
                }
            }
            self.pos = save;
        }
        best.map(|(idx, len)| {
            self.pos += len;
            idx
        })
    }

    /// `±h`, `±hh`, `±h:mm`/`±hh:mm`/`±hhmm` (the last three when `with_minutes`).
    fn offset(&mut self, hour_digits: (usize, usize), with_minutes: bool) -> Result<i64, String> {
        let sign = if self.eat('+') {
            1
        } else if self.eat('-') || self.eat('\u{2212}') {
            -1
        } else {
            return Err(format!(
                "expected a UTC offset starting with + or -, found {}",
                self.found()
            ));
        };
        let (hours, _) = self.digits(hour_digits.0, hour_digits.1, "offset hours")?;
        let minutes = if with_minutes {
            self.eat(':');
            self.digits(2, 2, "offset minutes")?.0
        } else {
            0
        };
        check_offset(sign, hours, minutes)
    }
}

/// Parses `text` with a .NET custom or standard date and time format string, like
/// `DateTime.ParseExact` with the invariant culture and the provisioning service's default styles
/// (`RoundtripKind | AllowLeadingWhite | AllowTrailingWhite`), and returns the instant in UTC.
///
/// Specifier rules follow .NET: `d`, `M`, `H`, `h`, `m`, `s` take one or two digits, doubled
/// ones exactly two; `y` takes one or two digits and `yy` exactly two (both pivot at 2049),
/// `yyy`/`yyyy`/… exactly that many digits; `f…` exactly as many fraction digits as letters,
/// `F…` up to that many (and may be absent, together with a preceding `.`); `MMM`/`MMMM` and
/// `ddd`/`dddd` match English names case-insensitively (a parsed day name must agree with the
/// date); `t`/`tt` match `A`/`P`/`AM`/`PM`; `z`/`zz` read a signed hour offset, `zzz` `±hh:mm`;
/// `K` reads an optional `Z` or offset; a literal `Z` (or `GMT`) in the format requires `Z`
/// (or `GMT`) in the text and means UTC. Quotes, `\`, `%`, `:` and `/` work as in
/// [`format_dotnet`]; other characters must match exactly, except that a space in the format
/// may be absent from the text.
///
/// With `h`/`hh`, `12 AM` is midnight and a missing `tt` means AM; with `H`, a `tt` that
/// contradicts the hour is an error. Text without an offset is taken as UTC.
///
/// Deliberate difference from .NET: missing date parts default to 0001-01-01 (year 1,
/// January, day 1) instead of today's date, so the result never depends on the clock; missing
/// time parts are 0.
///
/// # Errors
///
/// A message naming the text, the format and the first mismatch, e.g.
/// `cannot read "2015-01-23" with format "yyyyMMdd": expected a month (2 digits), found "-01-23"`.
pub fn parse_dotnet_exact(text: &str, format: &str) -> Result<DateTime<Utc>, String> {
    let fail = |why: String| format!("cannot read {text:?} with format {format:?}: {why}");
    if format.is_empty() {
        return Err(fail("the format is empty".to_string()));
    }
    let pattern = effective_pattern(format).map_err(fail)?;
    let chars: Vec<char> = text.trim().chars().collect();
    let mut input = Input {
        chars: &chars,
        pos: 0,
    };
    let mut st = ExactState::default();
    parse_by_format(&mut input, &pattern, format, &mut st).map_err(fail)?;
    if input.pos < chars.len() {
        return Err(fail(format!(
            "unexpected {:?} after the end of the format",
            input.rest()
        )));
    }
    finish_exact(&st).map_err(fail)
}

fn parse_by_format(
    input: &mut Input<'_>,
    p: &[char],
    format: &str,
    st: &mut ExactState,
) -> Result<(), String> {
    let mut i = 0;
    while i < p.len() {
        let c = p[i];
        let len = match c {
            'y' => {
                let n = repeat_count(p, i, c);
                if n <= 2 {
                    let (v, _) = input.digits(n, 2, "a year")?;
                    set_once(&mut st.year, expand_two_digit_year(v), "year")?;
                } else {
                    let (v, _) = input.digits(n, n, "a year")?;
                    set_once(&mut st.year, v, "year")?;
                }
                n
            }
            'M' => {
                let n = repeat_count(p, i, c);
                let month = match n {
                    1 | 2 => input.digits(n, 2, "a month")?.0,
                    _ => {
                        let names: &[&str] = if n == 3 {
                            &MONTH_ABBREVIATIONS
                        } else {
                            &MONTH_NAMES
                        };
                        let idx = input.name(names).ok_or_else(|| {
                            format!("expected a month name, found {}", input.found())
                        })?;
                        idx as i64 + 1
                    }
                };
                set_once(&mut st.month, month, "month")?;
                n
            }
            'd' => {
                let n = repeat_count(p, i, c);
                if n <= 2 {
                    let (v, _) = input.digits(n, 2, "a day")?;
                    set_once(&mut st.day, v, "day")?;
                } else {
                    let names: &[&str] = if n == 3 {
                        &DAY_ABBREVIATIONS
                    } else {
                        &DAY_NAMES
                    };
                    let idx = input
                        .name(names)
                        .ok_or_else(|| format!("expected a day name, found {}", input.found()))?;
                    st.day_of_week = Some(idx);
                }
                n
            }
            'h' | 'H' | 'm' | 's' => {
                let n = repeat_count(p, i, c);
                let min = if n == 1 { 1 } else { 2 };
                let (what, slot) = match c {
                    'h' | 'H' => ("an hour", &mut st.hour),
                    'm' => ("minutes", &mut st.minute),
                    _ => ("seconds", &mut st.second),
                };
                let (v, _) = input.digits(min, 2, what)?;
                set_once(slot, v, what)?;
                if c == 'h' {
                    st.hour12 = true;
                }
                n
            }
            'f' | 'F' => {
                let n = repeat_count(p, i, c);
                if n > 7 {
                    return Err(format!(
                        "the format asks for {n} fraction digits; at most 7"
                    ));
                }
                let min = if c == 'f' { n } else { 0 };
                let (v, got) = input.digits(min, n, "fraction digits")?;
                st.ticks = v * pow10(7 - got);
                n
            }
            't' => {
                let n = repeat_count(p, i, c);
                let pm = if n == 1 {
                    if input.eat_str_ci("A") {
                        false
                    } else if input.eat_str_ci("P") {
                        true
                    } else {
                        return Err(format!("expected A or P, found {}", input.found()));
                    }
                } else if input.eat_str_ci("AM") {
                    false
                } else if input.eat_str_ci("PM") {
                    true
                } else {
                    return Err(format!("expected AM or PM, found {}", input.found()));
                };
                st.pm = Some(pm);
                n
            }
            'z' => {
                let n = repeat_count(p, i, c);
                let o = match n {
                    1 => input.offset((1, 2), false)?,
                    2 => input.offset((2, 2), false)?,
                    _ => input.offset((1, 2), true)?,
                };
                set_once(&mut st.offset, o, "UTC offset")?;
                n
            }
            'K' => {
                if input.eat('Z') {
                    set_once(&mut st.offset, 0, "UTC offset")?;
                } else if matches!(input.chars.get(input.pos), Some('+' | '-' | '\u{2212}')) {
                    let o = input.offset((1, 2), true)?;
                    set_once(&mut st.offset, o, "UTC offset")?;
                }
                1
            }
            'Z' => {
                if !(input.eat('Z') || input.eat_str_ci("GMT")) {
                    return Err(format!("expected \"Z\", found {}", input.found()));
                }
                set_once(&mut st.offset, 0, "UTC offset")?;
                1
            }
            'g' => {
                let n = repeat_count(p, i, c);
                if !(input.eat_str_ci("A.D.") || input.eat_str_ci("AD")) {
                    return Err(format!("expected the era A.D., found {}", input.found()));
                }
                n
            }
            '\'' | '"' => {
                let (lit, used) = read_quoted(p, i, format)?;
                for ch in lit.chars() {
                    if !input.eat(ch) {
                        return Err(format!("expected {lit:?}, found {}", input.found()));
                    }
                }
                used
            }
            '%' => match p.get(i + 1) {
                Some(&next) if next != '%' => {
                    parse_by_format(input, &[next], format, st)?;
                    2
                }
                _ => return Err("a '%' in the format is not followed by a specifier".to_string()),
            },
            '\\' => match p.get(i + 1) {
                Some(&next) => {
                    if !input.eat(next) {
                        return Err(format!("expected {next:?}, found {}", input.found()));
                    }
                    2
                }
                None => return Err("the format ends with a lone '\\'".to_string()),
            },
            '.' => {
                if input.eat('.') {
                    1
                } else if p.get(i + 1) == Some(&'F') {
                    // ".FFF" with no fraction in the text: both are optional.
                    1 + repeat_count(p, i + 1, 'F')
                } else {
                    return Err(format!("expected \".\", found {}", input.found()));
                }
            }
            ' ' => {
                // AllowTrailingWhite lets a format space match nothing.
                input.eat(' ');
                1
            }
            _ => {
                let rest: String = p[i..].iter().take(3).collect();
                if rest == "GMT" {
                    if !input.eat_str_ci("GMT") {
                        return Err(format!("expected \"GMT\", found {}", input.found()));
                    }
                    set_once(&mut st.offset, 0, "UTC offset")?;
                    3
                } else {
                    if !input.eat(c) {
                        return Err(format!(
                            "expected {:?}, found {}",
                            c.to_string(),
                            input.found()
                        ));
                    }
                    1
                }
            }
        };
        i += len;
    }
    Ok(())
}

fn finish_exact(st: &ExactState) -> Result<DateTime<Utc>, String> {
    let mut hour = st.hour.unwrap_or(0);
    if st.hour12 {
        if hour > 12 {
            return Err(format!("hour {hour} is out of range for a 12-hour clock"));
        }
        if st.pm == Some(true) {
            if hour != 12 {
                hour += 12;
            }
        } else if hour == 12 {
            hour = 0;
        }
    } else if let Some(pm) = st.pm {
        if (!pm && hour >= 12) || (pm && hour < 12) {
            let mark = if pm { "PM" } else { "AM" };
            return Err(format!("hour {hour} contradicts {mark}"));
        }
    }
    let year = st.year.unwrap_or(1);
    let month = st.month.unwrap_or(1);
    let day = st.day.unwrap_or(1);
    let offset = st.offset.unwrap_or(0);
    let minute = st.minute.unwrap_or(0);
    let second = st.second.unwrap_or(0);
    // Check the day name against the local (not yet UTC-adjusted) date.
    let local = build_utc(year, month, day, hour, minute, second, st.ticks, 0)?;
    if let Some(dow) = st.day_of_week {
        let actual = local.weekday().num_days_from_sunday() as usize;
        if actual != dow {
            return Err(format!(
                "{year:04}-{month:02}-{day:02} is a {}, not a {}",
                DAY_NAMES[actual], DAY_NAMES[dow]
            ));
        }
    }
    build_utc(year, month, day, hour, minute, second, st.ticks, offset)
}

// ------------------------------------------------------------------------------------------------
// DateAdd / DateDiff
// ------------------------------------------------------------------------------------------------

/// The interval names of VB `DateAdd`/`DateDiff`, matched case-insensitively like
/// `Microsoft.VisualBasic.DateAndTime.DateIntervalFromString`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Interval {
    Year,
    Quarter,
    Month,
    DayOfYear,
    Day,
    Weekday,
    WeekOfYear,
    Hour,
    Minute,
    Second,
}

fn interval_from_str(interval: &str, function: &str) -> Result<Interval, String> {
    Ok(match interval.to_ascii_uppercase().as_str() {
        "YYYY" => Interval::Year,
        "Q" => Interval::Quarter,
        "M" => Interval::Month,
        "Y" => Interval::DayOfYear,
        "D" => Interval::Day,
        "W" => Interval::Weekday,
        "WW" => Interval::WeekOfYear,
        "H" => Interval::Hour,
        "N" => Interval::Minute,
        "S" => Interval::Second,
        _ => {
            return Err(format!(
                "{function}: unknown interval {interval:?}; expected one of yyyy, q, m, y, d, w, \
                 ww, h, n, s"
            ))
        }
    })
}

/// Whether `interval` is one the provisioning dialect documents for `DateAdd`/`DateDiff`:
/// `yyyy m d ww h n s` (no `q`, `y`, `w`). Compared case-insensitively, like the VB runtime
/// that [`date_add`] and [`date_diff`] model.
pub fn provisioning_intervals_ok(interval: &str) -> bool {
    ["yyyy", "m", "d", "ww", "h", "n", "s"]
        .iter()
        .any(|i| i.eq_ignore_ascii_case(interval))
}

fn add_months(dt: DateTime<Utc>, months: Option<i64>) -> Option<DateTime<Utc>> {
    let total = i64::from(dt.year())
        .checked_mul(12)?
        .checked_add(i64::from(dt.month0()))?;
    let total = total.checked_add(months?)?;
    let year = total.div_euclid(12);
    let month = (total.rem_euclid(12) + 1) as u32;
    if !(1..=9999).contains(&year) {
        return None;
    }
    let year = year as i32;
    let day = dt.day().min(days_in_month(year, month));
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    Some(NaiveDateTime::new(date, dt.time()).and_utc())
}

/// Adds `value` intervals to `dt`, like VB `DateAdd(interval, value, date)`.
///
/// Intervals (case-insensitive): `yyyy` years, `q` quarters, `m` months, `y` (day of year),
/// `d` and `w` (weekday) days, `ww` weeks, `h` hours, `n` minutes, `s` seconds. Year, quarter
/// and month arithmetic keeps the time of day and clamps the day to the end of the target month
/// (`2012-01-31` + 1 `m` = `2012-02-29`; `2012-02-29` + 1 `yyyy` = `2013-02-28`), like .NET
/// `Calendar.AddMonths`. Negative values go back in time.
///
/// # Errors
///
/// An unknown interval, or a result outside 0001-01-01..9999-12-31 (including arithmetic
/// overflow of huge values).
pub fn date_add(interval: &str, value: i64, dt: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let kind = interval_from_str(interval, "DateAdd")?;
    let delta = |d: Option<TimeDelta>| d.and_then(|d| dt.checked_add_signed(d));
    let result = match kind {
        Interval::Year => add_months(dt, value.checked_mul(12)),
        Interval::Quarter => add_months(dt, value.checked_mul(3)),
        Interval::Month => add_months(dt, Some(value)),
        Interval::DayOfYear | Interval::Day | Interval::Weekday => {
            delta(TimeDelta::try_days(value))
        }
        Interval::WeekOfYear => delta(TimeDelta::try_weeks(value)),
        Interval::Hour => delta(TimeDelta::try_hours(value)),
        Interval::Minute => delta(TimeDelta::try_minutes(value)),
        Interval::Second => delta(TimeDelta::try_seconds(value)),
    };
    result.filter(|r| in_dotnet_range(*r)).ok_or_else(|| {
        format!(
            "DateAdd({interval:?}, {value}, {}) falls outside the supported range 0001-01-01 to \
             9999-12-31",
            format_iso(dt)
        )
    })
}

/// Counts the `interval`s from `d1` to `d2`, like `Microsoft.VisualBasic.DateAndTime.DateDiff`
/// (the .NET implementation, with Sunday as the first day of the week). Positive when
/// `d2 > d1`, negative when `d2 < d1`, 0 when equal.
///
/// * `yyyy`, `q`, `m`: calendar boundaries crossed (`2021-12-31` → `2022-01-01` is 1 `yyyy`).
/// * `d` and `y`: whole elapsed days, truncated toward zero; `h`, `n`, `s`: whole elapsed
///   hours, minutes, seconds, truncated toward zero. This is the .NET behaviour
///   (`Fix(TimeSpan.TotalDays)`), *not* VBA's count of midnights: 23:00 → 01:00 the next day is
///   0 `d`.
/// * `w`: whole elapsed days divided by 7, truncated toward zero.
/// * `ww`: weeks on Sunday boundaries: both dates are moved back to the start of their week
///   (keeping their time of day), then whole elapsed days / 7. For the documented pair
///   8/25/2021 5:41:18 PM → 2012-03-16T07:00Z this gives −493, where `w` gives −492.
///
/// # Errors
///
/// An unknown interval.
pub fn date_diff(interval: &str, d1: DateTime<Utc>, d2: DateTime<Utc>) -> Result<i64, String> {
    let kind = interval_from_str(interval, "DateDiff")?;
    let (y1, y2) = (i64::from(d1.year()), i64::from(d2.year()));
    let (m1, m2) = (i64::from(d1.month0()), i64::from(d2.month0()));
    let elapsed = d2.signed_duration_since(d1);
    Ok(match kind {
        Interval::Year => y2 - y1,
        Interval::Quarter => (y2 - y1) * 4 + m2 / 3 - m1 / 3,
        Interval::Month => (y2 - y1) * 12 + m2 - m1,
        Interval::DayOfYear | Interval::Day => elapsed.num_days(),
        Interval::Hour => elapsed.num_hours(),
        Interval::Minute => elapsed.num_minutes(),
        Interval::Second => elapsed.num_seconds(),
        Interval::Weekday => elapsed.num_days() / 7,
        Interval::WeekOfYear => {
            // Moving each date back to its Sunday changes the elapsed time by the difference of
            // their weekday numbers; done on the duration so it cannot leave the date range.
            let dow = |d: DateTime<Utc>| i64::from(d.weekday().num_days_from_sunday());
            let shifted = elapsed
                .checked_sub(&TimeDelta::days(dow(d2) - dow(d1)))
                .unwrap_or(elapsed);
            shifted.num_days() / 7
        }
    })
}

// ------------------------------------------------------------------------------------------------
// FILETIME (DateFromNum / NumFromDate)
// ------------------------------------------------------------------------------------------------

/// Converts an AD FILETIME (100-ns ticks since 1601-01-01T00:00:00Z, as in `pwdLastSet`,
/// `accountExpires`, `lastLogonTimestamp`) to a date: `DateFromNum`.
/// `129699324000000000` is 2012-01-01 23:00:00 UTC; `0` ("never set") is 1601-01-01 00:00:00.
///
/// # Errors
///
/// Negative values, and values past 9999-12-31 23:59:59.9999999 (2650467743999999999) — in
/// particular `9223372036854775807`, AD's "never expires" marker, is an error rather than a
/// made-up date, matching .NET `DateTime.FromFileTimeUtc`. Callers that want a sentinel for
/// "never" should test for that value before converting.
pub fn filetime_to_date(ticks: i64) -> Result<DateTime<Utc>, String> {
    if ticks < 0 {
        return Err(format!(
            "{ticks} is not an AD date: FILETIME values cannot be negative"
        ));
    }
    if ticks > MAX_FILETIME {
        let hint = if ticks == i64::MAX {
            " (it is Active Directory's \"never expires\" marker)"
        } else {
            ""
        };
        return Err(format!(
            "{ticks} is not an AD date{hint}: the largest convertible FILETIME is {MAX_FILETIME} \
             (9999-12-31 23:59:59.9999999 UTC)"
        ));
    }
    let secs = ticks / TICKS_PER_SECOND - FILETIME_EPOCH_OFFSET_SECS;
    let nanos = (ticks % TICKS_PER_SECOND * 100) as u32;
    DateTime::from_timestamp(secs, nanos)
        .ok_or_else(|| format!("{ticks} cannot be represented as a date"))
}

/// Converts a date to an AD FILETIME (100-ns ticks since 1601-01-01T00:00:00Z): `NumFromDate`.
/// `2012-01-01 23:00:00 UTC` gives `129699324000000000`; sub-tick nanoseconds are truncated.
///
/// Dates before 1601 give negative numbers (which .NET `ToFileTimeUtc` would refuse; callers
/// that must mirror that can reject negative results). Dates beyond the `i64` range (far past
/// 9999, impossible for values produced by this module) saturate to `i64::MIN`/`i64::MAX`.
pub fn date_to_filetime(dt: DateTime<Utc>) -> i64 {
    let secs = i128::from(dt.timestamp()) + i128::from(FILETIME_EPOCH_OFFSET_SECS);
    let ticks = secs * i128::from(TICKS_PER_SECOND) + i128::from(sub_second_ticks(dt));
    i64::try_from(ticks).unwrap_or(if ticks < 0 { i64::MIN } else { i64::MAX })
}

// ------------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|date| date.and_hms_opt(h, mi, s))
            .map(|n| n.and_utc())
            .expect("valid test date")
    }

    fn p(s: &str) -> DateTime<Utc> {
        parse_date(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn cdate_prov(s: &str) -> String {
        format_provisioning(p(s))
    }

    // ---- parse_date: documented examples ----

    #[test]
    fn cdate_connect_doc_example_bare_hour_offset() {
        // CDate("2013-01-10 4:00 PM -8") -> 2013-01-11 12:00 AM (UTC)
        assert_eq!(p("2013-01-10 4:00 PM -8"), utc(2013, 1, 11, 0, 0, 0));
    }

    #[test]
    fn cdate_provisioning_doc_examples() {
        assert_eq!(cdate_prov("2020-03-16-07:00"), "3/16/2020 7:00:00 AM");
        assert_eq!(cdate_prov("2021-06-30+08:00"), "6/29/2021 4:00:00 PM");
        assert_eq!(
            cdate_prov("2009-06-15T01:45:30-07:00"),
            "6/15/2009 8:45:30 AM"
        );
        assert_eq!(cdate_prov("2012-03-16-07:00"), "3/16/2012 7:00:00 AM");
    }

    #[test]
    fn cdate_iso_forms() {
        assert_eq!(p("2012-01-01"), utc(2012, 1, 1, 0, 0, 0));
        assert_eq!(p("2012-01-01T23:00:00Z"), utc(2012, 1, 1, 23, 0, 0));
        assert_eq!(p("2012-01-01 23:00:00"), utc(2012, 1, 1, 23, 0, 0));
        assert_eq!(p("2012-01-01T23:00:00+08:00"), utc(2012, 1, 1, 15, 0, 0));
        assert_eq!(p("2012-01-01T23:00:00 +0800"), utc(2012, 1, 1, 15, 0, 0));
        assert_eq!(p("2012-01-01T23:00:00-07:00"), utc(2012, 1, 2, 6, 0, 0));
        assert_eq!(p("2012-01-01T23:00"), utc(2012, 1, 1, 23, 0, 0));
        assert_eq!(p("  2012-01-01T23:00:00Z \t"), utc(2012, 1, 1, 23, 0, 0));
        assert_eq!(p("2012/01/01"), utc(2012, 1, 1, 0, 0, 0));
        assert_eq!(p("2012-01-01Z"), utc(2012, 1, 1, 0, 0, 0));
        assert_eq!(p("2012-01-01 23:00:00 UTC"), utc(2012, 1, 1, 23, 0, 0));
        assert_eq!(
            p("2012-01-01 23:00:00 GMT+01:00"),
            utc(2012, 1, 1, 22, 0, 0)
        );
    }

    #[test]
    fn cdate_fractional_seconds() {
        let dt = p("2012-01-01T23:00:00.1234567Z");
        assert_eq!(sub_second_ticks(dt), 1_234_567);
        let dt = p("2012-01-01T23:00:00.123456789Z");
        assert_eq!(
            sub_second_ticks(dt),
            1_234_567,
            "digits past the 7th are truncated"
        );
        let dt = p("2012-01-01T23:00:00.5");
        assert_eq!(format_iso(dt), "2012-01-01T23:00:00.5Z");
    }

    #[test]
    fn cdate_offsets_after_time_without_space() {
        // NumFromDate documentation builds strings like these with Join.
        assert_eq!(p("2020-12-31 23:59:59-08:00"), utc(2021, 1, 1, 7, 59, 59));
        assert_eq!(p("2025-12-31T23:59:59-08:00"), utc(2026, 1, 1, 7, 59, 59));
        assert_eq!(p("2030-01-15 23:59:59-05:00"), utc(2030, 1, 16, 4, 59, 59));
    }

    #[test]
    fn cdate_us_forms() {
        assert_eq!(p("12/25/2007"), utc(2007, 12, 25, 0, 0, 0));
        assert_eq!(p("3/16/2020 7:00:00 AM"), utc(2020, 3, 16, 7, 0, 0));
        assert_eq!(p("1/11/2013 12:00 AM"), utc(2013, 1, 11, 0, 0, 0));
        assert_eq!(p("1/11/2013 12:00 PM"), utc(2013, 1, 11, 12, 0, 0));
        assert_eq!(p("1/11/2013 12:30:15 am"), utc(2013, 1, 11, 0, 30, 15));
        assert_eq!(p("8/25/2021 5:41:18 PM"), utc(2021, 8, 25, 17, 41, 18));
        assert_eq!(p("6/29/2021 4:00:00 PM"), utc(2021, 6, 29, 16, 0, 0));
        assert_eq!(p("1/11/2013 4 PM"), utc(2013, 1, 11, 16, 0, 0));
        assert_eq!(p("1/11/2013 4PM"), utc(2013, 1, 11, 16, 0, 0));
        assert_eq!(p("1/11/2013 16:00"), utc(2013, 1, 11, 16, 0, 0));
        assert_eq!(p("12-25-2007"), utc(2007, 12, 25, 0, 0, 0));
        assert_eq!(p("1/1/13"), utc(2013, 1, 1, 0, 0, 0));
        assert_eq!(p("1/1/49"), utc(2049, 1, 1, 0, 0, 0));
        assert_eq!(p("1/1/50"), utc(1950, 1, 1, 0, 0, 0));
        assert_eq!(p("12/31/2025 12:00:00 AM"), utc(2025, 12, 31, 0, 0, 0));
    }

    #[test]
    fn cdate_round_trips_provisioning_output() {
        for s in [
            "3/16/2020 7:00:00 AM",
            "6/29/2021 4:00:00 PM",
            "1/1/2012 12:00:00 AM",
        ] {
            assert_eq!(cdate_prov(s), s);
        }
    }

    #[test]
    fn cdate_month_names() {
        assert_eq!(p("January 10, 2013"), utc(2013, 1, 10, 0, 0, 0));
        assert_eq!(p("Jan 10 2013"), utc(2013, 1, 10, 0, 0, 0));
        assert_eq!(p("10 Jan 2013"), utc(2013, 1, 10, 0, 0, 0));
        assert_eq!(p("10-Jan-2013"), utc(2013, 1, 10, 0, 0, 0));
        assert_eq!(p("10 january, 2013 4:00 PM"), utc(2013, 1, 10, 16, 0, 0));
        assert_eq!(
            p("Thursday, January 10, 2013 4:00 PM"),
            utc(2013, 1, 10, 16, 0, 0)
        );
        assert_eq!(
            p("Thu, 10 Jan 2013 16:00:00 GMT"),
            utc(2013, 1, 10, 16, 0, 0)
        );
        assert_eq!(p("2013-Jan-10"), utc(2013, 1, 10, 0, 0, 0));
        assert_eq!(p("SEPTEMBER 1 2013"), utc(2013, 9, 1, 0, 0, 0));
    }

    #[test]
    fn cdate_time_first_and_zone_after_date() {
        assert_eq!(p("4:00 PM 1/10/2013"), utc(2013, 1, 10, 16, 0, 0));
        assert_eq!(p("16:00, January 10, 2013 -8"), utc(2013, 1, 11, 0, 0, 0));
        assert_eq!(p("2012-01-01 +08:00"), utc(2011, 12, 31, 16, 0, 0));
        assert_eq!(p("2012-01-01 Z"), utc(2012, 1, 1, 0, 0, 0));
    }

    #[test]
    fn cdate_generalized_time() {
        assert_eq!(format_iso(p("20150123105347.1Z")), "2015-01-23T10:53:47.1Z");
        assert_eq!(p("20140905081453.0Z"), utc(2014, 9, 5, 8, 14, 53));
        assert_eq!(p("20140905081453Z"), utc(2014, 9, 5, 8, 14, 53));
        assert_eq!(p("20140905081453.0-0700"), utc(2014, 9, 5, 15, 14, 53));
        assert!(parse_date("20141305081453.0Z").is_err());
    }

    #[test]
    fn cdate_leap_years() {
        assert_eq!(p("2020-02-29"), utc(2020, 2, 29, 0, 0, 0));
        assert_eq!(p("2000-02-29"), utc(2000, 2, 29, 0, 0, 0));
        let e = parse_date("2019-02-29").unwrap_err();
        assert!(
            e.contains("day 29 is out of range for February 2019"),
            "{e}"
        );
        assert!(parse_date("1900-02-29").is_err());
    }

    #[test]
    fn cdate_errors_name_input_and_problem() {
        assert_eq!(
            parse_date("2013-13-45").unwrap_err(),
            "cannot read \"2013-13-45\" as a date: month 13 is out of range"
        );
        let e = parse_date("12/45/2013").unwrap_err();
        assert!(
            e.starts_with("cannot read \"12/45/2013\" as a date: day 45"),
            "{e}"
        );
        // en-US: month first, so 25/12/2007 is month 25.
        assert!(parse_date("25/12/2007").unwrap_err().contains("month 25"));
        assert!(parse_date("").unwrap_err().contains("empty"));
        assert!(parse_date("hello")
            .unwrap_err()
            .contains("not a month name"));
        assert!(parse_date("2013-01-10 25:00")
            .unwrap_err()
            .contains("hour 25"));
        assert!(parse_date("2013-01-10 13:00 AM").is_err());
        assert!(parse_date("2013-01-10 10:60")
            .unwrap_err()
            .contains("minute 60"));
        assert!(parse_date("2013-01-10 10:00:60")
            .unwrap_err()
            .contains("second 60"));
        assert!(parse_date("2013-01-10 10:00 +15:00")
            .unwrap_err()
            .contains("14:00"));
        assert!(parse_date("4:00 PM").unwrap_err().contains("no date"));
        let e = parse_date("Fri, 10 Jan 2013").unwrap_err();
        assert!(e.contains("2013-01-10 is a Thursday, not a Friday"), "{e}");
        assert!(parse_date("2013-01-10 garbage").is_err());
        assert!(parse_date("0000-01-01").unwrap_err().contains("year 0"));
        assert!(parse_date("10000-01-01").is_err());
    }

    #[test]
    fn cdate_pm_with_24h_hour_is_accepted_like_dotnet() {
        assert_eq!(p("2013-01-10 13:00 PM"), utc(2013, 1, 10, 13, 0, 0));
        assert_eq!(p("2013-01-10 0:30 AM"), utc(2013, 1, 10, 0, 30, 0));
    }

    #[test]
    fn cdate_range_edges() {
        assert_eq!(p("9999-12-31 23:59:59"), utc(9999, 12, 31, 23, 59, 59));
        assert_eq!(p("0001-01-01"), utc(1, 1, 1, 0, 0, 0));
        // Moving to UTC would pass 9999-12-31 (the SuccessFactors "12/31/9999" trap).
        assert!(parse_date("9999-12-31T23:59:59-04:00").is_err());
        assert!(parse_date("0001-01-01T00:00:00+01:00").is_err());
    }

    #[test]
    fn no_panics_on_odd_input() {
        let odd = [
            "",
            " ",
            "-",
            "+",
            "/",
            ":",
            ".",
            ",",
            "T",
            "Z",
            "AM",
            "PM",
            "--",
            "//",
            "::",
            "1",
            "12",
            "123",
            "1/",
            "1/2",
            "1/2/",
            "1/2/3/4",
            "2012-",
            "2012-01",
            "2012-01-",
            "2012-1-1-",
            "2012-01-01T",
            "2012-01-01T10",
            "2012-01-01T10:",
            "2012-01-01T10:00:",
            "2012-01-01+",
            "2012-01-01+1:",
            "2012-01-01 10:00 -",
            "99999999999999999999999",
            "1/1/99999999999",
            "2012-01-01T10:00:00.",
            "January",
            "January 10",
            "10 January",
            "Mon,",
            "\u{2212}5",
            "٢٠١٢-٠١-٠١",
            "２０１２-01-01",
            "2012-01-01\u{0}",
            "😀",
            "2012-01-01 😀",
            "20150123105347.",
            "20150123105347.1+",
            "20150123105347.1+07",
            "99999999999999Z",
            "18446744073709551616/1/1",
            "1/1/18446744073709551616",
            "2012-01-01 10:00 +999999999",
            "Jan 99999999999999999999 2012",
        ];
        for s in odd {
            let _ = parse_date(s);
            let many_y = "yyyyyyyyyyyyyyyyyyyyyyyy";
            let _ = parse_dotnet_exact("999999999999999999999999", many_y);
            let _ = format_dotnet(utc(2012, 1, 1, 0, 0, 0), many_y);
            for f in [
                "yyyy-MM-dd",
                "%d",
                "d",
                "o",
                "'",
                "\\",
                "%",
                "fffffff",
                "K",
                "zzz",
                "tt",
            ] {
                let _ = parse_dotnet_exact(s, f);
                let _ = format_dotnet(utc(2012, 1, 1, 0, 0, 0), s);
            }
        }
        for v in [i64::MIN, -1, 0, 1, MAX_FILETIME, MAX_FILETIME + 1, i64::MAX] {
            let _ = filetime_to_date(v);
            for iv in ["yyyy", "q", "m", "y", "d", "w", "ww", "h", "n", "s", "x"] {
                let _ = date_add(iv, v, utc(2012, 1, 1, 0, 0, 0));
                let _ = date_add(iv, v, utc(9999, 12, 31, 23, 59, 59));
            }
        }
        let far = DateTime::<Utc>::MAX_UTC;
        let _ = date_to_filetime(far);
        let _ = date_to_filetime(DateTime::<Utc>::MIN_UTC);
        let _ = format_dotnet(far, "yyyy-MM-dd HH:mm:ss.fffffff zzz K g");
        let _ = format_dotnet(DateTime::<Utc>::MIN_UTC, "y yy yyy yyyy");
        let _ = format_provisioning(far);
        let _ = format_iso(far);
        for iv in ["yyyy", "q", "m", "y", "d", "w", "ww", "h", "n", "s"] {
            let _ = date_diff(iv, DateTime::<Utc>::MIN_UTC, far);
        }
    }

    /// Small deterministic generator so the fuzz-style tests need no extra crates.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn no_panics_on_random_strings() {
        let alphabet: Vec<char> =
            "0123456789012345678901234567890123456789-/:.,+ TZAMPamp'\\\"%yMdHhmsfFtzKg\u{2212}é"
                .chars()
                .collect();
        let mut rng = Lcg(42);
        let base = utc(2012, 2, 29, 23, 59, 59);
        for _ in 0..20_000 {
            let len = rng.below(24) as usize;
            let s: String = (0..len)
                .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                .collect();
            let _ = parse_date(&s);
            let _ = format_dotnet(base, &s);
            let _ = parse_dotnet_exact(&s, "yyyy-MM-ddTHH:mm:ss.FFFFFFFzzz");
            let _ = parse_dotnet_exact("2012-02-29 23:59:59.5 +01:00 PM", &s);
        }
    }

    #[test]
    fn round_trips_on_random_dates() {
        let mut rng = Lcg(7);
        let formats = [
            "yyyy-MM-ddTHH:mm:ss.fffffffK",
            "M/d/yyyy h:mm:ss tt",
            "dddd, dd MMMM yyyy HH:mm:ss.FFFFFFF zzz",
            "yyyyMMddHHmmss.fZ",
            "o",
            "r",
        ];
        for _ in 0..2_000 {
            let ticks = (rng.next() << 31 | rng.next()) as i64 % MAX_FILETIME;
            let dt = filetime_to_date(ticks).expect("in range");
            assert_eq!(p(&format_iso(dt)), dt);
            let whole = dt.with_nanosecond(0).expect("valid");
            assert_eq!(p(&format_provisioning(dt)), whole);
            assert_eq!(p(&fmt(dt, "R")), whole);
            for f in formats {
                let text = fmt(dt, f);
                let back = px(&text, f);
                let expect_ticks = match f {
                    "yyyyMMddHHmmss.fZ" => sub_second_ticks(dt) / 1_000_000 * 1_000_000,
                    "M/d/yyyy h:mm:ss tt" | "r" => 0,
                    _ => sub_second_ticks(dt),
                };
                assert_eq!(
                    back,
                    whole + TimeDelta::nanoseconds(expect_ticks * 100),
                    "{f}: {text}"
                );
            }
            for iv in ["yyyy", "q", "m", "y", "d", "w", "ww", "h", "n", "s"] {
                let n = rng.below(1000) as i64 - 500;
                if let Ok(later) = date_add(iv, n, dt) {
                    if matches!(iv, "d" | "y" | "h" | "n" | "s") {
                        assert_eq!(date_diff(iv, dt, later), Ok(n), "{iv} {n} from {dt}");
                    }
                }
            }
        }
    }

    // ---- formatting ----

    #[test]
    fn format_provisioning_examples() {
        assert_eq!(
            format_provisioning(utc(2020, 3, 16, 7, 0, 0)),
            "3/16/2020 7:00:00 AM"
        );
        assert_eq!(
            format_provisioning(utc(2021, 6, 29, 16, 0, 0)),
            "6/29/2021 4:00:00 PM"
        );
        assert_eq!(
            format_provisioning(utc(2012, 1, 1, 0, 0, 0)),
            "1/1/2012 12:00:00 AM"
        );
        assert_eq!(
            format_provisioning(utc(2012, 1, 1, 12, 5, 9)),
            "1/1/2012 12:05:09 PM"
        );
        assert_eq!(
            format_provisioning(utc(2021, 7, 2, 15, 33, 38)),
            "7/2/2021 3:33:38 PM"
        );
        assert_eq!(
            format_provisioning(utc(5, 1, 1, 23, 59, 59)),
            "1/1/0005 11:59:59 PM"
        );
    }

    #[test]
    fn format_iso_examples() {
        assert_eq!(
            format_iso(utc(2012, 1, 1, 23, 0, 0)),
            "2012-01-01T23:00:00Z"
        );
        let with_fraction = utc(2012, 1, 1, 23, 0, 0) + TimeDelta::milliseconds(250);
        assert_eq!(format_iso(with_fraction), "2012-01-01T23:00:00.25Z");
        let with_tick = utc(2012, 1, 1, 23, 0, 0) + TimeDelta::nanoseconds(100);
        assert_eq!(format_iso(with_tick), "2012-01-01T23:00:00.0000001Z");
    }

    fn fmt(dt: DateTime<Utc>, f: &str) -> String {
        format_dotnet(dt, f).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn format_dotnet_doc_examples() {
        // FormatDateTime(CDate("12/25/2007"),"yyyy-MM-dd") -> "2007-12-25"
        assert_eq!(fmt(p("12/25/2007"), "yyyy-MM-dd"), "2007-12-25");
        // Out-of-box pwdLastSet flow: "yyyyMMddHHmmss.0Z" keeps ".0Z" literally.
        assert_eq!(
            fmt(utc(2014, 9, 5, 8, 14, 53), "yyyyMMddHHmmss.0Z"),
            "20140905081453.0Z"
        );
        // DateFromNum(...) then format, end to end.
        let dt = filetime_to_date(date_to_filetime(utc(2014, 9, 5, 8, 14, 53))).expect("in range");
        assert_eq!(fmt(dt, "yyyyMMddHHmmss.0Z"), "20140905081453.0Z");
    }

    #[test]
    fn format_dotnet_custom_specifiers() {
        let dt = utc(2009, 6, 1, 13, 5, 7) + TimeDelta::nanoseconds(123_456_700);
        assert_eq!(fmt(dt, "yyyy yyy yy y"), "2009 2009 09 9");
        assert_eq!(
            fmt(utc(987, 1, 1, 0, 0, 0), "yyyy|yyy|yy|y|yyyyy"),
            "0987|987|87|87|00987"
        );
        assert_eq!(fmt(dt, "MMMM MMM MM M"), "June Jun 06 6");
        assert_eq!(fmt(dt, "dddd ddd dd d"), "Monday Mon 01 1");
        assert_eq!(fmt(dt, "HH H hh h"), "13 13 01 1");
        assert_eq!(fmt(dt, "mm m ss s"), "05 5 07 7");
        assert_eq!(
            fmt(dt, "f ff fff ffff fffff ffffff fffffff"),
            "1 12 123 1234 12345 123456 1234567"
        );
        assert_eq!(fmt(dt, "F FF FFF FFFFFFF"), "1 12 123 1234567");
        assert_eq!(fmt(dt, "tt t"), "PM P");
        assert_eq!(fmt(utc(2009, 6, 1, 0, 0, 0), "tt t hh"), "AM A 12");
        assert_eq!(fmt(dt, "K z zz zzz"), "Z +0 +00 +00:00");
        assert_eq!(fmt(dt, "g gg"), "A.D. A.D.");
        assert_eq!(fmt(dt, "HH:mm:ss MM/dd/yyyy"), "13:05:07 06/01/2009");
        assert_eq!(
            fmt(dt, "hhhh mmmm ssss dddddd MMMMMM"),
            "01 05 07 Monday June"
        );
    }

    #[test]
    fn format_dotnet_f_upper_drops_dot_when_empty() {
        let whole = utc(2009, 6, 1, 13, 5, 7);
        assert_eq!(fmt(whole, "HH:mm:ss.FFF"), "13:05:07");
        assert_eq!(fmt(whole, "HH:mm:ss.fff"), "13:05:07.000");
        let half = whole + TimeDelta::milliseconds(500);
        assert_eq!(fmt(half, "HH:mm:ss.FFF"), "13:05:07.5");
        assert_eq!(fmt(half, "ss.F"), "07.5");
        assert_eq!(fmt(whole + TimeDelta::milliseconds(50), "ss.F"), "07");
    }

    #[test]
    fn format_dotnet_literals_and_escapes() {
        let dt = utc(2009, 6, 1, 13, 5, 7);
        assert_eq!(fmt(dt, "'Year: 'yyyy"), "Year: 2009");
        assert_eq!(fmt(dt, "\"Day\" d"), "Day 1");
        assert_eq!(fmt(dt, "'it''s'"), "its");
        assert_eq!(fmt(dt, "'a\\'b'"), "a'b");
        assert_eq!(fmt(dt, "\\d\\a\\y d"), "day 1");
        assert_eq!(fmt(dt, "%d"), "1");
        assert_eq!(fmt(dt, "%M"), "6");
        assert_eq!(fmt(dt, "%y"), "9");
        assert_eq!(fmt(dt, "%h"), "1");
        assert_eq!(fmt(dt, "yyyy-MM-ddTHH:mm:ssZ"), "2009-06-01T13:05:07Z");
        assert_eq!(fmt(dt, "0#,; x"), "0#,; x");
    }

    #[test]
    fn format_dotnet_errors() {
        let dt = utc(2009, 6, 1, 13, 5, 7);
        assert!(format_dotnet(dt, "ffffffff").is_err());
        assert!(format_dotnet(dt, "FFFFFFFF").is_err());
        assert!(format_dotnet(dt, "'open").is_err());
        assert!(format_dotnet(dt, "yyyy\\").is_err());
        assert!(format_dotnet(dt, "yyyy%").is_err());
        assert!(format_dotnet(dt, "%%").is_err());
        let e = format_dotnet(dt, "H").unwrap_err();
        assert!(e.contains("%H"), "{e}");
        assert!(format_dotnet(dt, "x").is_err());
    }

    #[test]
    fn format_dotnet_standard_formats() {
        let dt = utc(2009, 6, 15, 13, 45, 30) + TimeDelta::nanoseconds(700);
        assert_eq!(fmt(dt, "d"), "06/15/2009");
        assert_eq!(fmt(dt, "D"), "Monday, 15 June 2009");
        assert_eq!(fmt(dt, "f"), "Monday, 15 June 2009 13:45");
        assert_eq!(fmt(dt, "F"), "Monday, 15 June 2009 13:45:30");
        assert_eq!(fmt(dt, "g"), "06/15/2009 13:45");
        assert_eq!(fmt(dt, "G"), "06/15/2009 13:45:30");
        assert_eq!(fmt(dt, ""), "06/15/2009 13:45:30");
        assert_eq!(fmt(dt, "M"), "June 15");
        assert_eq!(fmt(dt, "m"), "June 15");
        assert_eq!(fmt(dt, "O"), "2009-06-15T13:45:30.0000007Z");
        assert_eq!(fmt(dt, "o"), "2009-06-15T13:45:30.0000007Z");
        assert_eq!(fmt(dt, "R"), "Mon, 15 Jun 2009 13:45:30 GMT");
        assert_eq!(fmt(dt, "r"), "Mon, 15 Jun 2009 13:45:30 GMT");
        assert_eq!(fmt(dt, "s"), "2009-06-15T13:45:30");
        assert_eq!(fmt(dt, "t"), "13:45");
        assert_eq!(fmt(dt, "T"), "13:45:30");
        assert_eq!(fmt(dt, "u"), "2009-06-15 13:45:30Z");
        assert_eq!(fmt(dt, "U"), "Monday, 15 June 2009 13:45:30");
        assert_eq!(fmt(dt, "Y"), "2009 June");
        assert_eq!(fmt(dt, "y"), "2009 June");
    }

    // ---- parse_dotnet_exact ----

    fn px(text: &str, format: &str) -> DateTime<Utc> {
        parse_dotnet_exact(text, format).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn exact_doc_example_generalized_time() {
        // FormatDateTime([extensionAttribute1], , "yyyyMMddHHmmss.fZ", "yyyy-MM-dd")
        let dt = px("20150123105347.1Z", "yyyyMMddHHmmss.fZ");
        assert_eq!(format_iso(dt), "2015-01-23T10:53:47.1Z");
        assert_eq!(fmt(dt, "yyyy-MM-dd"), "2015-01-23");
    }

    #[test]
    fn exact_numfromdate_doc_recipes() {
        // Workday: FormatDateTime([ContractEndDate], ,"yyyy-MM-ddzzz", "yyyy-MM-dd")
        let dt = px("2020-12-31-08:00", "yyyy-MM-ddzzz");
        assert_eq!(dt, utc(2020, 12, 31, 8, 0, 0));
        assert_eq!(fmt(dt, "yyyy-MM-dd"), "2020-12-31");
        // SuccessFactors: FormatDateTime([endDate], ,"M/d/yyyy hh:mm:ss tt","yyyy-MM-dd")
        let dt = px("12/31/2025 12:00:00 AM", "M/d/yyyy hh:mm:ss tt");
        assert_eq!(dt, utc(2025, 12, 31, 0, 0, 0));
        assert_eq!(fmt(dt, "yyyy-MM-dd"), "2025-12-31");
        assert_eq!(
            px("8/15/2025 12:00:00 AM", "M/d/yyyy hh:mm:ss tt"),
            utc(2025, 8, 15, 0, 0, 0)
        );
        assert_eq!(
            px("1/15/1990 12:00:00 AM", "M/d/yyyy hh:mm:ss tt"),
            utc(1990, 1, 15, 0, 0, 0)
        );
        assert_eq!(
            px("12/31/2025 12:30:00 PM", "M/d/yyyy hh:mm:ss tt"),
            utc(2025, 12, 31, 12, 30, 0)
        );
        assert_eq!(
            px("12/31/2025 01:30:00 PM", "M/d/yyyy hh:mm:ss tt"),
            utc(2025, 12, 31, 13, 30, 0)
        );
        // hh needs two digits, as in .NET.
        assert!(parse_dotnet_exact("12/31/2025 1:30:00 PM", "M/d/yyyy hh:mm:ss tt").is_err());
        // DateAdd output reformatted: "yyyy-MM-dd" needs the whole string to match.
        assert!(parse_dotnet_exact("1/15/2030 12:00:00 AM", "yyyy-MM-dd").is_err());
        // The Workday page feeds "2025-12-31" to "yyyy-MM-ddzzz"; .NET rejects the missing offset.
        assert!(parse_dotnet_exact("2025-12-31", "yyyy-MM-ddzzz").is_err());
    }

    #[test]
    fn exact_whitespace_and_defaults() {
        assert_eq!(
            px("  2015-01-23  ", "yyyy-MM-dd"),
            utc(2015, 1, 23, 0, 0, 0)
        );
        assert_eq!(px("10:30", "HH:mm"), utc(1, 1, 1, 10, 30, 0));
        assert_eq!(px("2015", "yyyy"), utc(2015, 1, 1, 0, 0, 0));
        assert_eq!(px("03/2015", "MM/yyyy"), utc(2015, 3, 1, 0, 0, 0));
        // A format space may be absent in the text (AllowTrailingWhite).
        assert_eq!(px("10:00:00AM", "hh:mm:ss tt"), utc(1, 1, 1, 10, 0, 0));
    }

    #[test]
    fn exact_specifier_widths() {
        assert_eq!(px("1/2/2015", "M/d/yyyy"), utc(2015, 1, 2, 0, 0, 0));
        assert_eq!(px("01/02/2015", "M/d/yyyy"), utc(2015, 1, 2, 0, 0, 0));
        assert!(parse_dotnet_exact("1/02/2015", "MM/dd/yyyy").is_err());
        assert_eq!(px("15-01-23", "yy-MM-dd"), utc(2015, 1, 23, 0, 0, 0));
        assert_eq!(px("75-01-23", "yy-MM-dd"), utc(1975, 1, 23, 0, 0, 0));
        assert!(parse_dotnet_exact("015-01-23", "yyyy-MM-dd").is_err());
        assert_eq!(px("20150123", "yyyyMMdd"), utc(2015, 1, 23, 0, 0, 0));
        assert_eq!(px("7", "%H"), utc(1, 1, 1, 7, 0, 0));
    }

    #[test]
    fn exact_fractions() {
        assert_eq!(
            sub_second_ticks(px("10:00:00.123", "HH:mm:ss.fff")),
            1_230_000
        );
        assert!(parse_dotnet_exact("10:00:00.12", "HH:mm:ss.fff").is_err());
        assert_eq!(
            sub_second_ticks(px("10:00:00.12", "HH:mm:ss.FFF")),
            1_200_000
        );
        assert_eq!(px("10:00:00", "HH:mm:ss.FFF"), utc(1, 1, 1, 10, 0, 0));
        assert!(parse_dotnet_exact("10:00:00.1234", "HH:mm:ss.FFF").is_err());
        assert!(parse_dotnet_exact("1", "ffffffff").is_err());
    }

    #[test]
    fn exact_names_and_day_check() {
        assert_eq!(
            px("Monday, 15 June 2009", "dddd, dd MMMM yyyy"),
            utc(2009, 6, 15, 0, 0, 0)
        );
        assert_eq!(
            px("mon 15 jun 2009", "ddd dd MMM yyyy"),
            utc(2009, 6, 15, 0, 0, 0)
        );
        let e = parse_dotnet_exact("Tuesday, 15 June 2009", "dddd, dd MMMM yyyy").unwrap_err();
        assert!(e.contains("is a Monday, not a Tuesday"), "{e}");
        assert!(parse_dotnet_exact("15 Juno 2009", "dd MMMM yyyy").is_err());
    }

    #[test]
    fn exact_zones() {
        assert_eq!(
            px("2015-01-23T10:00:00+02:00", "yyyy-MM-ddTHH:mm:sszzz"),
            utc(2015, 1, 23, 8, 0, 0)
        );
        assert_eq!(
            px("2015-01-23T10:00:00-0530", "yyyy-MM-ddTHH:mm:sszzz"),
            utc(2015, 1, 23, 15, 30, 0)
        );
        assert_eq!(
            px("2015-01-23 10:00 -8", "yyyy-MM-dd HH:mm z"),
            utc(2015, 1, 23, 18, 0, 0)
        );
        assert_eq!(
            px("2015-01-23 10:00 +08", "yyyy-MM-dd HH:mm zz"),
            utc(2015, 1, 23, 2, 0, 0)
        );
        assert!(parse_dotnet_exact("2015-01-23 10:00 +8", "yyyy-MM-dd HH:mm zz").is_err());
        assert_eq!(
            px("2015-01-23T10:00:00Z", "yyyy-MM-ddTHH:mm:ssK"),
            utc(2015, 1, 23, 10, 0, 0)
        );
        assert_eq!(
            px("2015-01-23T10:00:00+01:00", "yyyy-MM-ddTHH:mm:ssK"),
            utc(2015, 1, 23, 9, 0, 0)
        );
        assert_eq!(
            px("2015-01-23T10:00:00", "yyyy-MM-ddTHH:mm:ssK"),
            utc(2015, 1, 23, 10, 0, 0)
        );
        assert_eq!(
            px("2015-01-23 10:00:00 GMT", "yyyy-MM-dd HH:mm:ss 'GMT'"),
            utc(2015, 1, 23, 10, 0, 0)
        );
        assert!(parse_dotnet_exact("20150123105347.1", "yyyyMMddHHmmss.fZ").is_err());
        assert!(parse_dotnet_exact("2015-01-23+15:00", "yyyy-MM-ddzzz").is_err());
    }

    #[test]
    fn exact_ampm_rules() {
        assert_eq!(px("12:15 AM", "hh:mm tt"), utc(1, 1, 1, 0, 15, 0));
        assert_eq!(px("12:15 PM", "hh:mm tt"), utc(1, 1, 1, 12, 15, 0));
        assert_eq!(px("11:15 pm", "hh:mm tt"), utc(1, 1, 1, 23, 15, 0));
        assert_eq!(px("11:15 P", "hh:mm t"), utc(1, 1, 1, 23, 15, 0));
        // hh without tt is taken as AM.
        assert_eq!(px("12:15", "hh:mm"), utc(1, 1, 1, 0, 15, 0));
        assert!(parse_dotnet_exact("13:15 PM", "hh:mm tt").is_err());
        // HH with a contradicting designator.
        assert!(parse_dotnet_exact("13:15 AM", "HH:mm tt").is_err());
        assert!(parse_dotnet_exact("09:15 PM", "HH:mm tt").is_err());
        assert_eq!(px("13:15 PM", "HH:mm tt"), utc(1, 1, 1, 13, 15, 0));
    }

    #[test]
    fn exact_literals_and_errors() {
        assert_eq!(
            px("Date: 2015-01-23", "'Date: 'yyyy-MM-dd"),
            utc(2015, 1, 23, 0, 0, 0)
        );
        assert_eq!(px("d2015", "\\dyyyy"), utc(2015, 1, 1, 0, 0, 0));
        assert_eq!(px("06/15/2009", "d"), utc(2009, 6, 15, 0, 0, 0));
        assert_eq!(
            px("2009-06-15T13:45:30.0000000Z", "o"),
            utc(2009, 6, 15, 13, 45, 30)
        );
        assert_eq!(px("2009-06-15T13:45:30", "s"), utc(2009, 6, 15, 13, 45, 30));
        let e = parse_dotnet_exact("2015-01-23", "yyyyMMdd").unwrap_err();
        assert_eq!(
            e,
            "cannot read \"2015-01-23\" with format \"yyyyMMdd\": expected a month (2 digits), \
             found \"-01-23\""
        );
        assert!(parse_dotnet_exact("2015-01-23x", "yyyy-MM-dd")
            .unwrap_err()
            .contains("\"x\""));
        assert!(parse_dotnet_exact("2015-02-30", "yyyy-MM-dd")
            .unwrap_err()
            .contains("day 30"));
        assert!(parse_dotnet_exact("2015-13-01", "yyyy-MM-dd")
            .unwrap_err()
            .contains("month 13"));
        assert!(parse_dotnet_exact("2015-01-01 2016", "yyyy-MM-dd yyyy").is_err());
        assert!(parse_dotnet_exact("2015", "").is_err());
        assert!(parse_dotnet_exact("2015", "q").is_err());
        assert!(parse_dotnet_exact("24:00", "HH:mm").is_err());
    }

    // ---- DateAdd ----

    fn add(iv: &str, v: i64, dt: DateTime<Utc>) -> DateTime<Utc> {
        date_add(iv, v, dt).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn date_add_connect_doc_example() {
        // DateAdd("m", 3, CDate("2001-01-01")) -> 2001-04-01
        assert_eq!(add("m", 3, p("2001-01-01")), utc(2001, 4, 1, 0, 0, 0));
    }

    #[test]
    fn date_add_provisioning_doc_table() {
        let hire = p("2012-03-16-07:00");
        assert_eq!(
            format_provisioning(add("d", 7, hire)),
            "3/23/2012 7:00:00 AM"
        );
        assert_eq!(
            format_provisioning(add("d", -10, hire)),
            "3/6/2012 7:00:00 AM"
        );
        assert_eq!(
            format_provisioning(add("ww", 2, hire)),
            "3/30/2012 7:00:00 AM"
        );
        assert_eq!(
            format_provisioning(add("m", 10, hire)),
            "1/16/2013 7:00:00 AM"
        );
        assert_eq!(
            format_provisioning(add("yyyy", 2, hire)),
            "3/16/2014 7:00:00 AM"
        );
    }

    #[test]
    fn date_add_all_intervals() {
        let base = utc(2012, 1, 31, 10, 0, 0);
        assert_eq!(add("yyyy", 1, base), utc(2013, 1, 31, 10, 0, 0));
        assert_eq!(add("q", 1, base), utc(2012, 4, 30, 10, 0, 0));
        assert_eq!(add("m", 1, base), utc(2012, 2, 29, 10, 0, 0));
        assert_eq!(
            add("m", 1, utc(2013, 1, 31, 0, 0, 0)),
            utc(2013, 2, 28, 0, 0, 0)
        );
        assert_eq!(add("y", 1, base), utc(2012, 2, 1, 10, 0, 0));
        assert_eq!(add("d", 1, base), utc(2012, 2, 1, 10, 0, 0));
        assert_eq!(add("w", 1, base), utc(2012, 2, 1, 10, 0, 0));
        assert_eq!(add("ww", 1, base), utc(2012, 2, 7, 10, 0, 0));
        assert_eq!(add("h", -7, base), utc(2012, 1, 31, 3, 0, 0));
        assert_eq!(add("n", 90, base), utc(2012, 1, 31, 11, 30, 0));
        assert_eq!(add("s", 3600, base), utc(2012, 1, 31, 11, 0, 0));
        assert_eq!(
            add("YYYY", 1, base),
            utc(2013, 1, 31, 10, 0, 0),
            "case-insensitive"
        );
        assert_eq!(add("M", -1, base), utc(2011, 12, 31, 10, 0, 0));
        assert_eq!(
            add("m", -13, utc(2012, 3, 31, 0, 0, 0)),
            utc(2011, 2, 28, 0, 0, 0)
        );
        assert_eq!(
            add("yyyy", 1, utc(2012, 2, 29, 0, 0, 0)),
            utc(2013, 2, 28, 0, 0, 0)
        );
        assert_eq!(
            add("yyyy", 4, utc(2012, 2, 29, 0, 0, 0)),
            utc(2016, 2, 29, 0, 0, 0)
        );
        assert_eq!(add("d", 0, base), base);
    }

    #[test]
    fn date_add_errors() {
        let base = utc(2012, 1, 31, 10, 0, 0);
        assert!(date_add("x", 1, base)
            .unwrap_err()
            .contains("unknown interval \"x\""));
        assert!(date_add("", 1, base).is_err());
        assert!(date_add("yyyy", 8000, base)
            .unwrap_err()
            .contains("outside"));
        assert!(date_add("yyyy", -2012, base).is_err());
        assert!(date_add("m", i64::MAX, base).is_err());
        assert!(date_add("yyyy", i64::MIN, base).is_err());
        assert!(date_add("s", i64::MAX, base).is_err());
        assert!(date_add("d", 1, utc(9999, 12, 31, 0, 0, 0)).is_err());
        assert_eq!(add("d", -1, utc(1, 1, 2, 0, 0, 0)), utc(1, 1, 1, 0, 0, 0));
    }

    #[test]
    fn provisioning_intervals() {
        for iv in ["yyyy", "m", "d", "ww", "h", "n", "s", "D", "WW"] {
            assert!(provisioning_intervals_ok(iv), "{iv}");
        }
        for iv in ["q", "y", "w", "", "yy", "mm", "x"] {
            assert!(!provisioning_intervals_ok(iv), "{iv}");
        }
    }

    // ---- DateDiff ----

    fn diff(iv: &str, a: &str, b: &str) -> i64 {
        date_diff(iv, p(a), p(b)).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn date_diff_provisioning_doc_table() {
        assert_eq!(diff("d", "2021-08-18+08:00", "2021-08-31+08:00"), 13);
        assert_eq!(diff("d", "8/25/2021 5:41:18 PM", "2012-03-16-07:00"), -3449);
        assert_eq!(diff("ww", "8/25/2021 5:41:18 PM", "2012-03-16-07:00"), -493);
        assert_eq!(diff("m", "8/25/2021 5:41:18 PM", "2012-03-16-07:00"), -113);
        assert_eq!(diff("yyyy", "8/25/2021 5:41:18 PM", "2012-03-16-07:00"), -9);
        assert_eq!(diff("d", "2021-08-31+08:00", "2021-08-31+08:00"), 0);
        assert_eq!(diff("h", "2021-08-24", "2021-08-25"), 24);
        assert_eq!(diff("n", "2021-08-24", "2021-08-25"), 1440);
        assert_eq!(diff("s", "2021-08-24", "2021-08-25"), 86400);
    }

    #[test]
    fn date_diff_other_intervals_on_doc_pair() {
        let (a, b) = ("8/25/2021 5:41:18 PM", "2012-03-16-07:00");
        // w = whole days / 7, truncated: differs from ww here.
        assert_eq!(diff("w", a, b), -492);
        assert_eq!(diff("y", a, b), -3449);
        assert_eq!(diff("q", a, b), -38);
        assert_eq!(diff("d", b, a), 3449);
        assert_eq!(diff("ww", b, a), 493);
    }

    #[test]
    fn date_diff_boundaries_and_truncation() {
        // Calendar boundaries for years, quarters, months.
        assert_eq!(diff("yyyy", "2021-12-31 23:59:59", "2022-01-01"), 1);
        assert_eq!(diff("m", "2021-01-31", "2021-02-01"), 1);
        assert_eq!(diff("q", "2021-03-31", "2021-04-01"), 1);
        assert_eq!(diff("q", "2021-01-01", "2021-03-31"), 0);
        assert_eq!(diff("m", "2021-02-01", "2021-01-31"), -1);
        // Elapsed time, truncated toward zero, for d/h/n/s (.NET DateAndTime.DateDiff).
        assert_eq!(diff("d", "2021-08-24 23:00", "2021-08-25 01:00"), 0);
        assert_eq!(diff("d", "2021-08-25 01:00", "2021-08-24 23:00"), 0);
        assert_eq!(diff("d", "2021-08-24 01:00", "2021-08-26 00:59"), 1);
        assert_eq!(diff("h", "2021-08-24 10:59", "2021-08-24 11:00"), 0);
        assert_eq!(diff("h", "2021-08-24 10:00", "2021-08-24 11:59:59"), 1);
        assert_eq!(diff("n", "2021-08-24 10:00:59", "2021-08-24 10:01:00"), 0);
        assert_eq!(
            diff("s", "2021-08-24 10:00:00", "2021-08-24 09:59:58.5"),
            -1
        );
        // Leap years: 2020 has 366 days.
        assert_eq!(diff("d", "2020-01-01", "2021-01-01"), 366);
        assert_eq!(diff("d", "2020-02-28", "2020-03-01"), 2);
    }

    #[test]
    fn date_diff_weeks() {
        // 2021-08-21 is a Saturday, 2021-08-22 a Sunday.
        assert_eq!(diff("ww", "2021-08-21", "2021-08-22"), 1);
        assert_eq!(diff("w", "2021-08-21", "2021-08-22"), 0);
        assert_eq!(diff("ww", "2021-08-22", "2021-08-28"), 0);
        assert_eq!(diff("ww", "2021-08-22", "2021-08-29"), 1);
        assert_eq!(diff("w", "2021-08-22", "2021-08-29"), 1);
        assert_eq!(diff("ww", "2021-08-28", "2021-08-22"), 0);
        assert_eq!(diff("ww", "2021-08-29", "2021-08-28"), -1);
        // .NET keeps the time of day when moving to the week start: Sat 23:00 -> Sun 01:00.
        assert_eq!(diff("ww", "2021-08-21 23:00", "2021-08-22 01:00"), 0);
    }

    #[test]
    fn date_diff_unknown_interval() {
        let e = date_diff("days", p("2021-01-01"), p("2021-01-02")).unwrap_err();
        assert!(e.contains("DateDiff: unknown interval \"days\""), "{e}");
    }

    // ---- FILETIME ----

    #[test]
    fn filetime_doc_examples() {
        // DateFromNum(129699324000000000) -> 2012-01-01 23:00:00
        assert_eq!(
            filetime_to_date(129_699_324_000_000_000),
            Ok(utc(2012, 1, 1, 23, 0, 0))
        );
        // NumFromDate(CDate("2012-01-01 23:00:00")) -> 129699324000000000
        assert_eq!(
            date_to_filetime(p("2012-01-01 23:00:00")),
            129_699_324_000_000_000
        );
    }

    #[test]
    fn filetime_numfromdate_recipes_by_arithmetic() {
        // The Workday / SuccessFactors pages print numbers that do not match their dates
        // (expressions.md section 6 item 6); these values are computed, not copied.
        assert_eq!(
            date_to_filetime(p("2025-12-31T23:59:59-08:00")),
            134_117_279_990_000_000
        );
        assert_eq!(
            date_to_filetime(p("2020-12-31 23:59:59-08:00")),
            132_539_615_990_000_000
        );
        assert_eq!(
            date_to_filetime(p("2025-12-31 23:59:59-05:00")),
            134_117_171_990_000_000
        );
        assert_eq!(
            date_to_filetime(p("2030-01-15 23:59:59-05:00")),
            135_392_435_990_000_000
        );
        assert_eq!(
            date_to_filetime(p("2099-12-31T23:59:59-04:00")),
            157_469_327_990_000_000
        );
        assert_eq!(
            date_to_filetime(p("2025-08-15 23:59:59-08:00")),
            133_998_047_990_000_000
        );
        assert_eq!(
            date_to_filetime(p("2050-01-15 23:59:59-05:00")),
            141_703_955_990_000_000
        );
        // The printed 133835135990000000 is 2025-02-08 18:39:59 UTC.
        assert_eq!(
            filetime_to_date(133_835_135_990_000_000),
            Ok(utc(2025, 2, 8, 18, 39, 59))
        );
    }

    #[test]
    fn filetime_edges() {
        assert_eq!(filetime_to_date(0), Ok(utc(1601, 1, 1, 0, 0, 0)));
        assert_eq!(date_to_filetime(utc(1601, 1, 1, 0, 0, 0)), 0);
        assert_eq!(filetime_to_date(1).map(sub_second_ticks), Ok(1));
        let max = filetime_to_date(MAX_FILETIME).expect("max is convertible");
        assert_eq!(
            fmt(max, "yyyy-MM-dd HH:mm:ss.fffffff"),
            "9999-12-31 23:59:59.9999999"
        );
        assert_eq!(date_to_filetime(max), MAX_FILETIME);
        assert!(filetime_to_date(MAX_FILETIME + 1).is_err());
        let e = filetime_to_date(i64::MAX).unwrap_err();
        assert!(e.contains("never expires"), "{e}");
        assert!(filetime_to_date(-1).is_err());
        assert_eq!(date_to_filetime(utc(1600, 12, 31, 23, 59, 59)), -10_000_000);
        assert_eq!(date_to_filetime(DateTime::<Utc>::MAX_UTC), i64::MAX);
        assert_eq!(date_to_filetime(DateTime::<Utc>::MIN_UTC), i64::MIN);
    }

    #[test]
    fn filetime_round_trip() {
        for ticks in [
            0,
            1,
            9_999_999,
            129_699_324_000_000_000,
            130_546_340_930_000_000,
            MAX_FILETIME,
        ] {
            let dt = filetime_to_date(ticks).expect("in range");
            assert_eq!(date_to_filetime(dt), ticks);
        }
    }
}
