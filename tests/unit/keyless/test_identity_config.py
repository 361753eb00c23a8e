"""Identity-based (keyless) endpoint configuration: both forms the Functions extension reads.

The connection string's ``AuthType`` follows Azure/azure-signalr
``src/Microsoft.Azure.SignalR.Common/Utilities/ConnectionStringParser.cs``; the settings
sections follow Azure/azure-sdk-for-net
``sdk/signalr/Microsoft.Azure.WebJobs.Extensions.SignalRService/src/Config/OptionsSetupFromConfig.cs``
and ``.../Config/IConfigurationExtensions.cs`` (``TryGetNamedEndpointFromIdentity``), whose
credential comes from ``sdk/extensions/Microsoft.Extensions.Azure/src/Internal/ClientFactory.cs``
(``CreateCredential``), falling back to ``DefaultAzureCredential``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, strategies as st

from signalr_protocol.connection_string import (
    AuthType,
    CredentialKind,
    EntraIdentity,
    identity_endpoints_from_environ,
    parse_connection_string,
)
from signalr_protocol.errors import ConnectionStringError, UnsupportedAuthTypeError

SECRET = "s3cret~value.with-odd=chars"
URL = "https://x.service.signalr.net"

MSI = CredentialKind.MANAGED_IDENTITY


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("AuthType=azure", EntraIdentity(CredentialKind.DEFAULT)),
        ("AuthType=azure;ClientId=ignored", EntraIdentity(CredentialKind.DEFAULT)),
        ("AuthType=azure.msi", EntraIdentity(MSI)),
        ("AuthType=Azure.MSI;ClientId=cid", EntraIdentity(MSI, client_id="cid")),
        ("authtype=azure.msi;clientid=cid;tenantid=tid", EntraIdentity(MSI, client_id="cid")),
        (
            f"AuthType=azure.app;ClientId=cid;TenantId=tid;ClientSecret={SECRET}",
            EntraIdentity(
                CredentialKind.CLIENT_SECRET, client_id="cid", tenant_id="tid", client_secret=SECRET
            ),
        ),
        (
            "AuthType=azure.app;ClientId=cid;TenantId=tid;ClientCert=/c.pem",
            EntraIdentity(
                CredentialKind.CLIENT_CERTIFICATE,
                client_id="cid",
                tenant_id="tid",
                client_cert_path="/c.pem",
            ),
        ),
        (
            "AuthType=azure.app;ClientId=cid;TenantId=tid;ClientCertPath=/c.pem",
            EntraIdentity(
                CredentialKind.CLIENT_CERTIFICATE,
                client_id="cid",
                tenant_id="tid",
                client_cert_path="/c.pem",
            ),
        ),
        (
            f"AuthType=azure.app;ClientId=cid;TenantId=tid;ClientSecret={SECRET};ClientCert=/c",
            EntraIdentity(
                CredentialKind.CLIENT_SECRET, client_id="cid", tenant_id="tid", client_secret=SECRET
            ),
        ),
        # Legacy aad: the SDK's BuildAzureADAccessKey decision tree.
        ("AuthType=aad", EntraIdentity(MSI)),
        ("AuthType=aad;TenantId=tid", EntraIdentity(MSI)),
        ("AuthType=aad;ClientId=cid", EntraIdentity(MSI, client_id="cid")),
        (
            f"AuthType=aad;ClientId=cid;TenantId=tid;ClientSecret={SECRET}",
            EntraIdentity(
                CredentialKind.CLIENT_SECRET, client_id="cid", tenant_id="tid", client_secret=SECRET
            ),
        ),
        (
            "AuthType=aad;ClientId=cid;TenantId=tid;ClientCert=/c.pem",
            EntraIdentity(
                CredentialKind.CLIENT_CERTIFICATE,
                client_id="cid",
                tenant_id="tid",
                client_cert_path="/c.pem",
            ),
        ),
    ],
)
def test_auth_type_forms_give_the_sdk_credential(extra: str, expected: EntraIdentity) -> None:
    """Each AuthType form maps to the credential ConnectionStringParser.cs builds for it."""
    ep = parse_connection_string(f"Endpoint={URL};{extra};Version=1.0;")
    assert ep.identity == expected
    assert ep.keyless
    assert ep.access_key is None
    assert ep.auth_type is AuthType(extra.split(";")[0].split("=")[1].lower())


def test_access_key_is_ignored_with_an_auth_type() -> None:
    """An AccessKey next to AuthType=azure.msi is ignored, as the SDK builds no key from it."""
    ep = parse_connection_string(f"Endpoint={URL};AccessKey=abc;AuthType=azure.msi;")
    assert ep.access_key is None and ep.identity == EntraIdentity(MSI)


def test_unknown_auth_type_falls_back_to_the_access_key() -> None:
    """An AuthType the SDK does not know means access-key auth (and needs the AccessKey)."""
    ep = parse_connection_string(f"Endpoint={URL};AccessKey=abc;AuthType=magic;")
    assert ep.auth_type is AuthType.ACCESS_KEY and ep.identity is None and not ep.keyless
    with pytest.raises(ConnectionStringError, match="'AccessKey'"):
        parse_connection_string(f"Endpoint={URL};AuthType=magic;")


def test_port_server_and_client_endpoints_apply_with_identity() -> None:
    """Port, ServerEndpoint and ClientEndpoint apply when keyless; accessKey uses the server."""
    ep = parse_connection_string(
        "Endpoint=http://localhost;Port=8888;AuthType=azure.msi;"
        "ServerEndpoint=http://internal:9000/;ClientEndpoint=https://gw.example.com"
    )
    assert ep.endpoint == "http://localhost:8888"
    assert ep.server_endpoint == "http://internal:9000"
    assert ep.client_url("Chat") == "https://gw.example.com/client/?hub=chat"
    assert ep.client_audience("chat") == "http://localhost/client/?hub=chat"
    assert ep.access_key_url == "http://internal:9000/api/v1/auth/accessKey"
    plain = parse_connection_string("Endpoint=http://localhost;Port=8888;AuthType=azure")
    assert plain.access_key_url == "http://localhost:8888/api/v1/auth/accessKey"


def test_keyless_endpoint_cannot_hand_out_an_access_key() -> None:
    """require_access_key() of a keyless endpoint raises the typed error, naming AccessKey."""
    ep = parse_connection_string(f"Endpoint={URL};AuthType=azure.msi")
    with pytest.raises(UnsupportedAuthTypeError, match="AccessKey"):
        ep.require_access_key()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (f"AuthType=azure.app;TenantId=tid;ClientSecret={SECRET}", "'ClientId'"),
        (f"AuthType=azure.app;ClientId=cid;ClientSecret={SECRET}", "'TenantId'"),
        ("AuthType=azure.app;ClientId=cid;TenantId=tid", "'ClientSecret' or the 'ClientCert'"),
        ("AuthType=aad;ClientId=cid;TenantId=tid", "'ClientSecret' or the 'ClientCert'"),
        (f"AuthType=azure.app;ClientSecret={SECRET};clientsecret=x", "twice"),
        (f"AuthType=azure.msi;ClientSecret={SECRET};ServerEndpoint=nope", "ServerEndpoint"),
    ],
)
def test_incomplete_identity_strings_are_refused(extra: str, message: str) -> None:
    """A missing identity key is named in a one-line error that never shows the secret."""
    with pytest.raises(ConnectionStringError, match=message) as info:
        parse_connection_string(f"Endpoint={URL};{extra}")
    assert SECRET not in str(info.value)
    assert "\n" not in str(info.value)


def test_repr_hides_the_client_secret() -> None:
    """repr() of an app-registration endpoint shows the client id, never the secret."""
    ep = parse_connection_string(
        f"Endpoint={URL};AuthType=azure.app;ClientId=cid;TenantId=tid;ClientSecret={SECRET}"
    )
    assert SECRET not in repr(ep) and "cid" in repr(ep)
    assert ep.identity is not None
    assert SECRET not in ep.identity.describe() and "cid" in ep.identity.describe()


_VALUE = st.text(
    alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Nd"), whitelist_characters="-._~/+="),
    min_size=1,
    max_size=24,
)


@given(
    auth=st.sampled_from(["azure.app", "aad"]),
    client_id=_VALUE,
    tenant_id=_VALUE,
    secret=_VALUE,
    cert=st.one_of(st.none(), _VALUE),
    case=st.sampled_from([str.lower, str.upper, str.title]),
)
def test_app_registration_round_trip(
    auth: str,
    client_id: str,
    tenant_id: str,
    secret: str,
    cert: str | None,
    case: Callable[[str], str],
) -> None:
    """Any client id, tenant and secret (in any key case) parse back to the same identity."""
    parts = [f"Endpoint={URL}", f"AuthType={auth}", f"ClientId={client_id}"]
    parts += [f"TenantId={tenant_id}", f"ClientSecret={secret}"]
    if cert is not None:
        parts.append(f"ClientCert={cert}")
    text = ";".join(f"{case(p.split('=', 1)[0])}={p.split('=', 1)[1]}" for p in parts)
    ep = parse_connection_string(text)
    assert ep.identity == EntraIdentity(
        CredentialKind.CLIENT_SECRET, client_id=client_id, tenant_id=tenant_id, client_secret=secret
    )


@given(secret=_VALUE, missing=st.sampled_from(["ClientId", "TenantId"]))
def test_errors_never_echo_the_secret(secret: str, missing: str) -> None:
    """Whatever the secret, an incomplete azure.app string's error leaves it out."""
    keys = {"ClientId": "the-client", "TenantId": "the-tenant"}
    del keys[missing]
    text = f"Endpoint={URL};AuthType=azure.app;ClientSecret=S{secret}S;" + ";".join(
        f"{k}={v}" for k, v in keys.items()
    )
    with pytest.raises(ConnectionStringError, match=missing) as info:
        parse_connection_string(text)
    assert f"S{secret}S" not in str(info.value)


# -- the settings sections ------------------------------------------------------------------

DEFAULT = "AzureSignalRConnectionString"
NAMED = "Azure__SignalR__Endpoints"


def test_default_section_with_managed_identity() -> None:
    """__serviceUri + __credential=managedidentity + __clientId: a user-assigned identity."""
    [ep] = identity_endpoints_from_environ(
        {
            f"{DEFAULT}__serviceUri": f"{URL}/",
            f"{DEFAULT}__credential": "ManagedIdentity",
            f"{DEFAULT}__clientId": "cid",
            "UNRELATED": "x",
        }
    )
    assert ep.endpoint == URL and ep.name == "" and ep.primary
    assert ep.identity == EntraIdentity(MSI, client_id="cid")
    assert ep.auth_type is AuthType.AZURE_MSI
    assert ep.access_key_url == f"{URL}/api/v1/auth/accessKey"


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"credential": "managedidentity"}, EntraIdentity(MSI)),
        (
            {"clientId": "cid", "tenantId": "tid", "clientSecret": SECRET},
            EntraIdentity(
                CredentialKind.CLIENT_SECRET, client_id="cid", tenant_id="tid", client_secret=SECRET
            ),
        ),
        (
            {
                "credential": "managedidentity",
                "clientId": "c",
                "tenantId": "t",
                "clientSecret": "s",
            },
            EntraIdentity(MSI, client_id="c"),
        ),
        ({}, EntraIdentity(CredentialKind.DEFAULT)),
        ({"clientId": "cid"}, EntraIdentity(CredentialKind.DEFAULT)),
        ({"tenantId": "tid"}, EntraIdentity(CredentialKind.DEFAULT)),
    ],
)
def test_section_credentials_follow_the_client_factory(
    keys: dict[str, str], expected: EntraIdentity
) -> None:
    """The credential keys pick what ClientFactory.CreateCredential picks, else the default."""
    environ = {f"{DEFAULT}__serviceUri": URL} | {f"{DEFAULT}__{k}": v for k, v in keys.items()}
    [ep] = identity_endpoints_from_environ(environ)
    assert ep.identity == expected


def test_default_section_is_ignored_when_the_connection_string_is_set() -> None:
    """A plain AzureSignalRConnectionString wins over its section, as in OptionsSetupFromConfig."""
    environ = {DEFAULT: f"Endpoint={URL};AccessKey=abc", f"{DEFAULT}__serviceUri": URL}
    assert identity_endpoints_from_environ(environ) == []
    environ[DEFAULT] = "  "
    assert len(identity_endpoints_from_environ(environ)) == 1


def test_named_endpoints_with_type_and_mixed_case() -> None:
    """Named sections give named endpoints, secondary by __type, default first, names sorted."""
    environ = {
        f"{NAMED}__west__serviceUri": "https://west.service.signalr.net",
        f"{NAMED}__west__type": "Secondary",
        f"{NAMED}__west__credential": "managedidentity",
        "AZURE__SIGNALR__ENDPOINTS__East__SERVICEURI": "https://east.service.signalr.net",
        f"{NAMED}__keyed": f"Endpoint={URL};AccessKey=abc",
        f"{NAMED}__keyed__secondary": f"Endpoint={URL};AccessKey=abc",
        f"{DEFAULT}__serviceUri": "http://localhost:8888",
        f"{DEFAULT}:credential": "managedidentity",
    }
    endpoints = identity_endpoints_from_environ(environ)
    assert [(e.name, e.endpoint, e.primary) for e in endpoints] == [
        ("", "http://localhost:8888", True),
        ("East", "https://east.service.signalr.net", True),
        ("west", "https://west.service.signalr.net", False),
    ]
    assert endpoints[0].identity == EntraIdentity(MSI)
    assert endpoints[1].identity == EntraIdentity(CredentialKind.DEFAULT)
    assert endpoints[2].label == "west (https://west.service.signalr.net)"


def test_colon_separated_names_are_read_like_double_underscores() -> None:
    """Azure:SignalR:Endpoints:<name>:serviceUri (App Service on Windows) is the same setting."""
    [ep] = identity_endpoints_from_environ({"Azure:SignalR:Endpoints:one:serviceUri": URL})
    assert ep.name == "one" and ep.endpoint == URL


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({f"{DEFAULT}__serviceUri": "ftp://x"}, f"'{DEFAULT}__serviceUri' must be an absolute"),
        ({f"{DEFAULT}__serviceUri": "x.example.com"}, f"'{DEFAULT}__serviceUri' must be"),
        ({f"{DEFAULT}__serviceUri": "https://x:99999"}, "invalid port"),
        ({f"{DEFAULT}__credential": "managedidentity"}, f"'{DEFAULT}__serviceUri' is missing"),
        (
            {f"{NAMED}__a__clientSecret": SECRET, f"{NAMED}__a__clientId": "cid"},
            f"'{NAMED}__a__serviceUri' is missing",
        ),
        (
            {f"{NAMED}__a__serviceUri": URL, f"{NAMED}__a__type": "tertiary"},
            f"'{NAMED}__a__type' must be 'primary' or 'secondary'",
        ),
        (
            {f"{NAMED}__a__serviceUri": URL, f"{NAMED}__a__credential": "password"},
            f"'{NAMED}__a__credential' must be 'managedidentity'",
        ),
        (
            {f"{DEFAULT}__serviceUri": URL, f"{DEFAULT}__clientSecret": SECRET},
            f"'{DEFAULT}__clientSecret' is set but '{DEFAULT}__clientId' is not",
        ),
        (
            {
                f"{DEFAULT}__serviceUri": URL,
                f"{DEFAULT}__clientSecret": SECRET,
                f"{DEFAULT}__clientId": "c",
            },
            f"'{DEFAULT}__tenantId' is not",
        ),
        (
            {
                f"{DEFAULT}__serviceUri": URL,
                f"{DEFAULT}__clientId": "c",
                f"{DEFAULT}__tenantId": "t",
                f"{DEFAULT}__clientCertificate": "AB12",
            },
            f"'{DEFAULT}__clientCertificate' .* is not supported",
        ),
        (
            {f"{NAMED}__a__serviceUri": URL, f"{NAMED}__A__SERVICEURI": URL},
            "given twice",
        ),
    ],
)
def test_bad_sections_are_refused_naming_the_setting(environ: dict[str, str], message: str) -> None:
    """Each malformed section gives a one-line error naming the setting, never the secret."""
    with pytest.raises(ConnectionStringError, match=message) as info:
        identity_endpoints_from_environ(environ)
    assert SECRET not in str(info.value)
    assert "\n" not in str(info.value)


@given(
    name=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12),
    secondary=st.booleans(),
    client_id=st.one_of(st.none(), st.uuids().map(str)),
)
def test_any_named_managed_identity_section_round_trips(
    name: str, secondary: bool, client_id: str | None
) -> None:
    """Any endpoint name, type and optional client id come back as configured."""
    environ = {
        f"{NAMED}__{name}__serviceUri": URL,
        f"{NAMED}__{name}__credential": "managedidentity",
        f"{NAMED}__{name}__type": "secondary" if secondary else "primary",
    }
    if client_id is not None:
        environ[f"{NAMED}__{name}__clientId"] = client_id
    [ep] = identity_endpoints_from_environ(environ)
    assert (ep.name, ep.primary) == (name, not secondary)
    assert ep.identity == EntraIdentity(MSI, client_id=client_id)
