"""Smoke test: Microsoft's Python Graph SDK against the emulator binary, through the start-up contract.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install msgraph-sdk==1.65.0 deprecated
    /tmp/venv/bin/python msgraph_python_smoke.py target/debug/partnersync-graph-emulator

Covers create, get by UPN, ODataError (404 and ObjectConflict details), PATCH, the page iterator,
an advanced query with $count, delta (snapshot, @removed), deleted items, restore, invitations
and $batch. Not run in CI (needs PyPI); prints "OK: …" and the binary's exit code (0 on SIGTERM).
"""
import asyncio, json, subprocess, sys, urllib.parse, urllib.request

BIN = sys.argv[1]
proc = subprocess.Popen([BIN, "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
contract = json.loads(proc.stdout.readline())
form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": contract["client_id"],
    "client_secret": contract["client_secret"], "scope": "https://graph.microsoft.com/.default"}).encode()
token = json.load(urllib.request.urlopen(contract["token_url"], form))["access_token"]
base = contract["graph_url"].rsplit("/v1.0", 1)[0]
# Seed 250 users through the admin API.
req = urllib.request.Request(base + "/_emulator/users/generate", json.dumps({"count": 250, "domain": "contoso.com"}).encode(),
                             {"content-type": "application/json"})
urllib.request.urlopen(req)

from kiota_abstractions.authentication import AccessTokenProvider, AllowedHostsValidator, BaseBearerTokenAuthenticationProvider
from msgraph import GraphServiceClient, GraphRequestAdapter
from msgraph.generated.models.user import User
from msgraph.generated.models.password_profile import PasswordProfile
from msgraph.generated.models.invitation import Invitation
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.users.users_request_builder import UsersRequestBuilder
from msgraph_core.tasks.page_iterator import PageIterator
from msgraph.generated.models.user_collection_response import UserCollectionResponse

class Static(AccessTokenProvider):
    async def get_authorization_token(self, uri, additional_authentication_context=None):
        return token
    def get_allowed_hosts_validator(self):
        return AllowedHostsValidator([])

adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(Static()))
adapter.base_url = contract["graph_url"]
client = GraphServiceClient(request_adapter=adapter)

async def main():
    ok = []
    u = await client.users.post(User(account_enabled=True, display_name="Py User", mail_nickname="pyuser",
        user_principal_name="pyuser@contoso.com", password_profile=PasswordProfile(password="Xy12345!abcD", force_change_password_next_sign_in=True)))
    assert u.id, u; ok.append("create")
    got = await client.users.by_user_id("PyUser@contoso.com").get()
    assert got.id == u.id; ok.append("get by UPN")
    try:
        await client.users.by_user_id("nobody@contoso.com").get()
        raise SystemExit("expected ODataError")
    except ODataError as e:
        assert e.error.code == "Request_ResourceNotFound", e.error.code
        assert e.response_status_code == 404
        ok.append("ODataError 404")
    try:
        await client.users.post(User(account_enabled=True, display_name="Dup", mail_nickname="dup",
            user_principal_name="pyuser@contoso.com", password_profile=PasswordProfile(password="Xy12345!abcD")))
        raise SystemExit("expected conflict")
    except ODataError as e:
        assert e.error.code == "Request_BadRequest" and e.error.details[0].code == "ObjectConflict", e.error
        ok.append("ObjectConflict details")
    await client.users.by_user_id(u.id).patch(User(company_name="Fabrikam"))
    ok.append("patch")
    cfg = UsersRequestBuilder.UsersRequestBuilderGetRequestConfiguration(
        query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(select=["id", "userPrincipalName", "companyName"], top=100))
    page = await client.users.get(request_configuration=cfg)
    seen = []
    it = PageIterator(page, adapter)
    # the page iterator calls the callback for each item
    await it.iterate(lambda user: seen.append(user.id) or True)
    assert len(seen) == 251, len(seen); ok.append("page iterator 251")
    # advanced query with count
    from kiota_abstractions.headers_collection import HeadersCollection
    cfg = UsersRequestBuilder.UsersRequestBuilderGetRequestConfiguration(
        query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(filter="companyName eq 'Fabrikam'", count=True, select=["id"]))
    cfg.headers.add("ConsistencyLevel", "eventual")
    r = await client.users.get(request_configuration=cfg)
    assert r.odata_count == 1 and r.value[0].id == u.id, r; ok.append("advanced query $count")
    d = await client.users.delta.get()
    n = len(d.value)
    while d.odata_next_link:
        d = await client.users.delta.with_url(d.odata_next_link).get()
        n += len(d.value)
    assert n == 251 and d.odata_delta_link, n; ok.append("delta snapshot")
    await client.users.by_user_id(u.id).delete()
    d2 = await client.users.delta.with_url(d.odata_delta_link).get()
    assert any(x.id == u.id and x.additional_data.get("@removed") for x in d2.value), [x.additional_data for x in d2.value]
    ok.append("delta @removed")
    deleted = await client.directory.deleted_items.graph_user.get()
    assert [x.id for x in deleted.value] == [u.id]; ok.append("deletedItems/graph.user")
    restored = await client.directory.deleted_items.by_directory_object_id(u.id).restore.post()
    assert restored.id == u.id and isinstance(restored, User), restored; ok.append("restore")
    inv = await client.invitations.post(Invitation(invited_user_email_address="guest@fabrikam.com", invite_redirect_url="https://myapps.microsoft.com"))
    assert inv.invited_user.id and inv.status == "PendingAcceptance"; ok.append("invitation")
    # Batch
    from msgraph_core.requests.batch_request_item import BatchRequestItem
    from msgraph_core.requests.batch_request_content import BatchRequestContent
    from msgraph_core.requests.batch_response_content import BatchResponseContent
    from msgraph_core.requests.batch_request_builder import BatchRequestBuilder
    r1 = client.users.by_user_id(u.id).to_get_request_information()
    r2 = client.users.by_user_id("nobody@contoso.com").to_get_request_information()
    content = BatchRequestContent({"a": BatchRequestItem(r1), "b": BatchRequestItem(r2)})
    resp = await BatchRequestBuilder(adapter).post(content)
    statuses = sorted(x.status for x in resp.responses.values())
    assert statuses == [200, 404], statuses; ok.append("batch")
    # The SDK's retry handler honours the emulator's 429 + Retry-After and 503.
    rules = [{"method": "GET", "path": "/v1.0/users/*", "script": [
        {"type": "status", "status": 429, "retry_after": 1}, {"type": "status", "status": 503, "retry_after": 1}]}]
    urllib.request.urlopen(urllib.request.Request(base + "/_emulator/faults", json.dumps(rules).encode(),
                                                  {"content-type": "application/json"}, method="PUT"))
    again = await client.users.by_user_id(u.id).get()
    assert again.id == u.id
    log = json.load(urllib.request.urlopen(base + "/_emulator/log"))["value"]
    tail = [e["status"] for e in log if e["path"] == f"/v1.0/users/{u.id}"][-3:]
    assert tail == [429, 503, 200], tail
    ok.append("retry on 429/503")
    print("OK:", ", ".join(ok))

try:
    asyncio.run(main())
finally:
    proc.terminate()
    proc.wait(10)
    print("exit code", proc.returncode)
