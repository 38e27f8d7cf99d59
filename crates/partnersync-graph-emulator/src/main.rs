//! `partnersync-graph-emulator --listen 127.0.0.1:PORT [--state FILE] [--tenant CONFIG]`

fn main() {
    if let Err(e) = partnersync_graph_emulator::run_cli_blocking(std::env::args().skip(1)) {
        eprintln!("partnersync-graph-emulator: {e}");
        std::process::exit(match e {
            partnersync_graph_emulator::Error::Usage(_) => 2,
            _ => 1,
        });
    }
}
