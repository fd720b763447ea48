"""Drives Tessera's Vault-compatible PKI API with hvac, the Python Vault
client, as a tool built for Vault would: health, token lookup, sign and
issue under a role, CA, chain, certificate and CRL reads, revoke, and the
refusals hvac raises as exceptions. Run by tests/it/vault.rs, which reads
the last line printed (JSON) and checks the revocation in the store.

Environment: VAULT_ADDR, VAULT_CACERT (Tessera's root), HVAC_ISSUER_TOKEN
(an issuer token bound to the policy `default`), HVAC_ADMIN_TOKEN, and
HVAC_CSR_FILE (a PEM CSR for hvac.test), HVAC_ROLE_ID and HVAC_SECRET_ID
(an AppRole for `default`), HVAC_KUBERNETES_JWT (a
service-account token for cert-manager/cert-manager, role cert-manager),
HVAC_EXPIRED_JWT (the same, expired), HVAC_CLIENT_CERT and HVAC_CLIENT_KEY
(files: a workload's certificate chain from Tessera and its key, for the
certificate login's role payments).
"""

import json
import os
import sys

import hvac
from hvac import exceptions

MOUNT = "pki"
ROLE = "default"


def client(token):
    return hvac.Client(url=os.environ["VAULT_ADDR"], token=token, verify=os.environ["VAULT_CACERT"])


def expect(exception, call, what):
    try:
        call()
    except exception as e:
        if not e.errors:
            sys.exit(f"{what}: refused without Vault's errors list")
        return
    sys.exit(f"{what}: expected {exception.__name__}")


def main():
    issuer = client(os.environ["HVAC_ISSUER_TOKEN"])
    admin = client(os.environ["HVAC_ADMIN_TOKEN"])
    with open(os.environ["HVAC_CSR_FILE"]) as f:
        csr = f.read()

    health = issuer.sys.read_health_status(method="GET")
    assert health["initialized"] and not health["sealed"], health
    assert issuer.is_authenticated(), "lookup-self accepts the issuer token"
    assert not client("tsr_not_a_token").is_authenticated(), "an unknown token is refused"
    lookup = issuer.auth.token.lookup_self()
    assert lookup["data"]["policies"] == ["default"], lookup

    signed = issuer.secrets.pki.sign_certificate(
        name=ROLE, csr=csr, common_name="hvac.test", extra_params={"ttl": "1h"}, mount_point=MOUNT
    )
    data = signed["data"]
    assert data["certificate"].startswith("-----BEGIN CERTIFICATE-----"), data
    assert data["issuing_ca"].startswith("-----BEGIN CERTIFICATE-----"), data
    assert len(data["ca_chain"]) >= 2, data
    serial = data["serial_number"]
    assert ":" in serial, serial

    issued = issuer.secrets.pki.generate_certificate(
        name=ROLE, common_name="made.hvac.test", extra_params={"alt_names": "made.hvac.test"}, mount_point=MOUNT
    )
    assert "PRIVATE KEY" in issued["data"]["private_key"], "issue returns the key it made"
    assert issued["data"]["private_key_type"] == "ec"

    ca_pem = issuer.secrets.pki.read_ca_certificate(mount_point=MOUNT)
    assert ca_pem.strip() == data["issuing_ca"].strip(), "ca/pem is the issuing CA"
    chain = issuer.secrets.pki.read_ca_certificate_chain(mount_point=MOUNT)
    assert chain.count("BEGIN CERTIFICATE") >= 2, chain
    read = issuer.secrets.pki.read_certificate(serial=serial, mount_point=MOUNT)
    assert read["data"]["certificate"].strip() == data["certificate"].strip(), read
    assert read["data"]["revocation_time"] == 0, read

    expect(exceptions.Forbidden, lambda: issuer.secrets.pki.revoke_certificate(serial, mount_point=MOUNT),
           "an issuer token revoking")
    revoked = admin.secrets.pki.revoke_certificate(serial, mount_point=MOUNT)
    assert revoked["data"]["revocation_time"] > 0, revoked
    read = issuer.secrets.pki.read_certificate(serial=serial, mount_point=MOUNT)
    assert read["data"]["revocation_time"] > 0, read
    crl = issuer.secrets.pki.read_crl(mount_point=MOUNT)
    assert "BEGIN X509 CRL" in crl, crl

    build = client(None)
    login = build.auth.approle.login(role_id=os.environ["HVAC_ROLE_ID"], secret_id=os.environ["HVAC_SECRET_ID"])
    assert login["auth"]["policies"] == ["default"], login
    build.secrets.pki.sign_certificate(name=ROLE, csr=csr, common_name="hvac.test", mount_point=MOUNT)
    expect(exceptions.Forbidden,
           lambda: client(None).auth.approle.login(role_id=os.environ["HVAC_ROLE_ID"], secret_id="tsr_guess"),
           "a wrong secret id")

    workload = client(None)
    login = workload.auth.kubernetes.login(role="cert-manager", jwt=os.environ["HVAC_KUBERNETES_JWT"])
    assert login["auth"]["policies"] == ["default"], login
    assert workload.is_authenticated(), "the minted token is accepted"
    workload.secrets.pki.sign_certificate(name=ROLE, csr=csr, common_name="hvac.test", mount_point=MOUNT)
    expect(exceptions.Forbidden,
           lambda: client(None).auth.kubernetes.login(role="cert-manager", jwt=os.environ["HVAC_EXPIRED_JWT"]),
           "an expired jwt")

    workload = client(None)
    login = workload.auth.cert.login(cert_pem=os.environ["HVAC_CLIENT_CERT"], key_pem=os.environ["HVAC_CLIENT_KEY"])
    assert login["auth"]["policies"] == ["default"], login
    assert login["auth"]["metadata"]["role"] == "payments", login
    workload.secrets.pki.sign_certificate(name=ROLE, csr=csr, common_name="hvac.test", mount_point=MOUNT)
    expect(exceptions.InvalidRequest,
           lambda: client(None).auth.cert.login(name="db", cert_pem=os.environ["HVAC_CLIENT_CERT"],
                                                key_pem=os.environ["HVAC_CLIENT_KEY"]),
           "an unknown certificate role")

    expect(exceptions.InvalidRequest,
           lambda: issuer.secrets.pki.sign_certificate(name="web", csr=csr, common_name="hvac.test",
                                                       mount_point=MOUNT), "an unknown role")
    outside = issuer.secrets.pki.generate_certificate
    expect(exceptions.InvalidRequest,
           lambda: outside(name=ROLE, common_name="www.example.com", mount_point=MOUNT), "a name outside the policy")
    expect(exceptions.Forbidden,
           lambda: client("tsr_not_a_token").secrets.pki.sign_certificate(name=ROLE, csr=csr, common_name="hvac.test",
                                                                         mount_point=MOUNT), "an unknown token")

    print(json.dumps({"revoked_serial": serial}))


if __name__ == "__main__":
    main()
