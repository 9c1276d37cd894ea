#!/usr/bin/env python3
"""Independent OpenDSR *controller-side* test client, written from the specification only.

Follows OpenDSR specification "Version 2.0" (github.com/opengdpr/OpenDSR @ 6c080e2, specification.md):
  3.4 major version in base URL | 4.1 CA-issued, non-self-signed certificate | 4.2 FIPS 186-4 signatures
  (RSA PKCS#1 v1.5 or ECDSA, SHA-256, base64) | 5.1-5.3 identities | 6.3 discovery properties |
  7.1.1 request | 7.3 create response | 7.5/7.6 error object | 8 statuses | 8.3 status response |
  8.6 callback | 8.8 callback authentication | 9.2 cancellation response | 10.1 OpenGDPR names (--legacy:
  /opengdpr_requests, X-OpenGDPR-Signature, X-OpenGDPR-Processor-Domain from OpenGDPR_specification.md v1)
and security_guidelines.md "Callback validation" 1-5 (whitelist, certificate before signature, 401/400/202).
Where the documents disagree the choice is marked "CHOICE:" below.
"""
import argparse
import base64
import datetime as dt
import http.client
import http.server
import ipaddress
import json
import re
import ssl
import sys
import threading
import uuid
from urllib.parse import quote, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

IDENTITY_TYPES = {"controller_customer_id", "android_advertising_id", "android_id", "email",
                  "fire_advertising_id", "ios_advertising_id", "ios_vendor_id", "microsoft_advertising_id",
                  "microsoft_publisher_id", "roku_publisher_id", "roku_advertising_id"}           # 5.1
IDENTITY_FORMATS = {"raw", "sha1", "md5", "sha256"}                                             # 5.2
REQUEST_TYPES = {"access", "portability", "erasure"}                                            # 6.2
REQUEST_STATUSES = {"pending", "in_progress", "completed", "cancelled"}                         # 8
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


class CheckFailed(Exception):
    def __init__(self, message, result=None):
        super().__init__(message)
        self.result = result  # optional JSON still printed on stdout (listen timeout)


def require(condition, message):
    if not condition:
        raise CheckFailed(message)


def is_rfc3339(value):
    if not isinstance(value, str) or not RFC3339.match(value):
        return False
    text = re.sub(r"[Zz]$", "+00:00", value.replace("t", "T"))
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        dt.datetime.fromisoformat(text)
        return True
    except ValueError:
        return False


FIELD_KINDS = {
    "string": lambda v: isinstance(v, str),
    "time": is_rfc3339,
    "count": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "status": lambda v: isinstance(v, str) and v in REQUEST_STATUSES,
}


def check_fields(body, what, required, optional=None):
    require(isinstance(body, dict), f"{what}: body is not a JSON object")
    for key, kind in required.items():
        require(key in body, f"{what}: REQUIRED property {key!r} is missing")
        require(FIELD_KINDS[kind](body[key]), f"{what}: property {key!r} is not a valid {kind}: {body[key]!r}")
    for key, kind in (optional or {}).items():
        if key in body:
            require(FIELD_KINDS[kind](body[key]), f"{what}: property {key!r} is not a valid {kind}: {body[key]!r}")


def error_shape_ok(body, status):
    """7.5/7.6: {"error": {"code": <int == HTTP status>, "message"?: str, "errors"?: [{domain, reason, message}]}}"""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return False
    code = err.get("code")
    if not isinstance(code, int) or isinstance(code, bool) or code != status:
        return False
    if "message" in err and not isinstance(err["message"], str):
        return False
    items = err.get("errors", [])
    return isinstance(items, list) and all(
        isinstance(i, dict) and all(isinstance(i.get(k), str) for k in ("domain", "reason", "message")) for i in items)


# ---------------------------------------------------------------- signatures and certificates (4.1, 4.2)

def sign_like_processor(private_key, body):
    if isinstance(private_key, rsa.RSAPrivateKey):
        signature = private_key.sign(body, padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = private_key.sign(body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signature).decode()


def verify_signature(public_key, body, signature_b64):
    """True iff signature_b64 (base64, whitespace/line folding tolerated) signs the raw bytes `body`."""
    if not signature_b64:
        return False
    try:
        signature = base64.b64decode("".join(signature_b64.split()), validate=True)
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, body, ec.ECDSA(hashes.SHA256()))
        else:
            return False  # FIPS 186-4 key types only
        return True
    except (InvalidSignature, ValueError):
        return False


def server_name(domain):
    try:
        return x509.IPAddress(ipaddress.ip_address(domain))
    except ValueError:
        return x509.DNSName(domain)


def verify_certificate_chain(chain, roots, domain):
    """4.1 + guidelines 2.ii-vi: CA-issued, unexpired, valid for `domain`, leaf not self-signed (no revocation check)."""
    require(chain, "processor certificate: no PEM certificate found")
    leaf = chain[0]
    require(leaf.issuer != leaf.subject, "processor certificate is self-signed (4.1: MUST NOT be used)")
    verifier = (PolicyBuilder().store(Store(roots)).time(dt.datetime.now(dt.timezone.utc))
                .build_server_verifier(server_name(domain)))
    try:
        verifier.verify(leaf, chain[1:])
    except VerificationError as exc:
        raise CheckFailed(f"processor certificate does not verify for {domain!r} against --ca: {exc}")


def load_ca(path):
    with open(path, "rb") as handle:
        return x509.load_pem_x509_certificates(handle.read())


# ---------------------------------------------------------------- HTTP

def base_url(args):
    require(urlsplit(args.base).scheme == "https" and urlsplit(args.base).hostname, "--base must be an https URL")
    return args.base.rstrip("/")


def base_host(args):
    return urlsplit(args.base).hostname.lower()


def requests_url(args):
    return base_url(args) + ("/opengdpr_requests" if args.legacy else "/requests")  # 10.1


def header_names(legacy):
    prefix = "X-OpenGDPR-" if legacy else "X-OpenDSR-"
    return prefix + "Signature", prefix + "Processor-Domain"


def http_request(method, url, ca, token=None, body=None, accept="application/json"):
    parts = urlsplit(url)
    require(parts.scheme in ("http", "https") and parts.hostname, f"not an absolute http(s) URL: {url!r}")
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=30,
                                           context=ssl.create_default_context(cafile=ca))
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)
    headers = {"Accept": accept}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), body=body,
                     headers=headers)
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise CheckFailed(f"{method} {url} failed: {exc}")
    finally:
        conn.close()


def parse_json_or_text(raw):
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw.decode("utf-8", "replace")


def refusal(status, raw):
    result = {"status": status, "body": parse_json_or_text(raw)}
    if status >= 400:
        result["error_shape_ok"] = error_shape_ok(result["body"], status)
    return result


def verify_signed_response(args, headers, raw, key, what):
    """Domain header == base host, signature header valid over the RAW body; only then parse JSON."""
    signature_header, domain_header = header_names(args.legacy)
    domain = headers.get(domain_header)
    require(domain is not None, f"{what}: missing {domain_header} header")
    require(domain.strip().lower() == base_host(args),
            f"{what}: {domain_header} {domain!r} does not equal the processor domain {base_host(args)!r}")
    require(headers.get(signature_header) is not None, f"{what}: missing {signature_header} header")
    require(verify_signature(key, raw, headers.get(signature_header)),
            f"{what}: {signature_header} does not verify over the raw body with the processor certificate key")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise CheckFailed(f"{what}: body is not JSON: {raw[:200]!r}")


# ---------------------------------------------------------------- discovery (6)

def check_discovery_document(doc, domain):
    require(isinstance(doc, dict), "discovery: body is not a JSON object")
    require(isinstance(doc.get("api_version"), str), "discovery: REQUIRED api_version must be a string (6.3)")
    identities = doc.get("supported_identities")
    require(isinstance(identities, list), "discovery: REQUIRED supported_identities must be an array (6.3)")
    for item in identities:
        require(isinstance(item, dict) and isinstance(item.get("identity_type"), str)
                and item["identity_type"] in IDENTITY_TYPES and isinstance(item.get("identity_format"), str)
                and item["identity_format"] in IDENTITY_FORMATS,
                f"discovery: bad supported_identities item (needs 5.1 identity_type + 5.2 identity_format): {item!r}")
    types = doc.get("supported_subject_request_types")
    require(isinstance(types, list) and all(isinstance(t, str) and t in REQUEST_TYPES for t in types),
            f"discovery: supported_subject_request_types must be an array of 6.2 strings: {types!r}")
    url = doc.get("processor_certificate")
    require(isinstance(url, str) and urlsplit(url).scheme in ("http", "https") and urlsplit(url).hostname,
            f"discovery: processor_certificate must be an absolute http(s) URL: {url!r}")
    # CHOICE: 6.3 "The domain MUST match that of the discovery callback" read as: certificate URL host == domain.
    require(urlsplit(url).hostname.lower() == domain,
            f"discovery: processor_certificate host {urlsplit(url).hostname!r} does not match domain {domain!r}")


def discover_processor(args):
    """GET {base}/discovery (no token), download + verify the processor certificate. Returns (doc, chain)."""
    status, _, raw = http_request("GET", base_url(args) + "/discovery", args.ca)
    require(status == 200, f"discovery: expected HTTP 200, got {status}: {raw[:300]!r}")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise CheckFailed(f"discovery: body is not JSON: {raw[:300]!r}")
    check_discovery_document(doc, base_host(args))
    status, _, pem = http_request("GET", doc["processor_certificate"], args.ca,
                                  accept="application/x-pem-file, */*")
    require(status == 200, f"certificate download: expected HTTP 200, got {status}")
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise CheckFailed(f"processor_certificate is not PEM: {exc}")
    verify_certificate_chain(chain, load_ca(args.ca), base_host(args))
    return doc, chain


def cmd_discover(args):
    doc, _ = discover_processor(args)
    keys = ("api_version", "supported_identities", "supported_subject_request_types", "processor_certificate")
    return {**{k: doc[k] for k in keys}, "domain": base_host(args)}


# ---------------------------------------------------------------- requests (7, 8, 9)

def build_request(args):
    request = {
        "regulation": args.regulation,
        "subject_request_id": args.request_id or str(uuid.uuid4()),  # lowercase v4 (1.1)
        "subject_request_type": args.type,
        "subject_identities": [{"identity_type": "email", "identity_format": "raw", "identity_value": args.email}],
        "submitted_time": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "api_version": "2.0",
    }
    if args.callback:
        request["status_callback_urls"] = list(args.callback)
    for field in args.omit or []:
        request.pop(field, None)
    for assignment in args.set or []:
        field, sep, value = assignment.partition("=")
        require(sep and field, f"--set expects FIELD=JSONVALUE, got {assignment!r}")
        try:
            request[field] = json.loads(value)
        except ValueError:
            raise CheckFailed(f"--set {field}: value is not JSON: {value!r}")
    return request


def cmd_create(args):
    _, chain = discover_processor(args)
    request = build_request(args)
    sent = json.dumps(request, separators=(",", ":")).encode()
    status, headers, raw = http_request("POST", requests_url(args), args.ca, args.token, sent)
    if status != 201:
        return refusal(status, raw)
    what = "create response (7.3)"
    body = verify_signed_response(args, headers, raw, chain[0].public_key(), what)
    # CHOICE: 7.3 lists processor_signature as REQUIRED body property, but 7.4 carries it only in the header.
    check_fields(body, what, {"controller_id": "string", "expected_completion_time": "time", "received_time": "time",
                              "encoded_request": "string", "subject_request_id": "string"},
                 {"processor_signature": "string", "api_version": "string"})
    require(body["subject_request_id"] == request.get("subject_request_id"),
            f"{what}: subject_request_id {body['subject_request_id']!r} does not echo {request.get('subject_request_id')!r}")
    try:
        decoded = base64.b64decode("".join(body["encoded_request"].split()), validate=True)
    except ValueError:
        raise CheckFailed(f"{what}: encoded_request is not valid base64")
    require(decoded == sent, f"{what}: encoded_request does not decode to the exact bytes that were POSTed")
    return {"status": 201, "subject_request_id": body["subject_request_id"], "response": body,
            "signature_valid": True, "body_signature_present": "processor_signature" in body}


def cmd_status(args):
    _, chain = discover_processor(args)
    status, headers, raw = http_request("GET", f"{requests_url(args)}/{quote(args.id, safe='')}", args.ca, args.token)
    if status != 200:
        return refusal(status, raw)
    what = "status response (8.3)"
    body = verify_signed_response(args, headers, raw, chain[0].public_key(), what)
    check_fields(body, what, {"controller_id": "string", "expected_completion_time": "time",
                              "subject_request_id": "string", "request_status": "status"},
                 {"api_version": "string", "results_url": "string", "results_count": "count"})
    require(body["subject_request_id"] == args.id, f"{what}: subject_request_id does not match {args.id!r}")
    return {"status": 200, "response": body, "signature_valid": True}


def cmd_cancel(args):
    _, chain = discover_processor(args)
    status, headers, raw = http_request("DELETE", f"{requests_url(args)}/{quote(args.id, safe='')}", args.ca,
                                        args.token)
    if status != 202:
        return refusal(status, raw)
    what = "cancellation response (9.2)"
    body = verify_signed_response(args, headers, raw, chain[0].public_key(), what)
    check_fields(body, what, {"controller_id": "string", "received_time": "time", "subject_request_id": "string"},
                 {"processor_signature": "string", "api_version": "string"})
    require(body["subject_request_id"] == args.id, f"{what}: subject_request_id does not match {args.id!r}")
    return {"status": 202, "response": body, "signature_valid": True,
            "body_signature_present": "processor_signature" in body}


# ---------------------------------------------------------------- callbacks (8.6, 8.8, security guidelines)

class CallbackListener:
    def __init__(self, args):
        self.args, self.own_url = args, f"https://localhost:{args.port}{args.path}"
        self.wanted = set()
        for pair in args.until:
            request_id, sep, status = pair.rpartition(":")
            require(sep and request_id and status in REQUEST_STATUSES, f"--until expects ID:STATUS, got {pair!r}")
            self.wanted.add((request_id, status))
        self.seen, self.callbacks, self.rejected, self.ignored = set(), [], 0, 0
        self.lock, self.cert_lock, self.done, self.cache = threading.Lock(), threading.Lock(), threading.Event(), {}

    def processor_key(self, domain):
        """8.8 steps 2-3: cached certificate (re-verified on use, refetched if no longer valid), else discovery."""
        with self.cert_lock:
            chain = self.cache.get(domain)
            if chain is not None:
                try:
                    verify_certificate_chain(chain, load_ca(self.args.ca), domain)
                    return chain[0].public_key()
                except CheckFailed:
                    del self.cache[domain]
            self.cache[domain] = discover_processor(self.args)[1]
            return self.cache[domain][0].public_key()

    def authenticate(self, headers, raw):
        """Returns (http_status, reason, body or None). Never parses JSON before the signature is verified."""
        names = [header_names(self.args.legacy), header_names(not self.args.legacy)]  # 10.1: honour both
        signature_header, domain_header = next((n for n in names if headers.get(n[1]) is not None), names[0])
        domain = (headers.get(domain_header) or "").strip().lower()
        if domain != base_host(self.args):  # guidelines 1: whitelist = the --base processor only
            return 401, f"processor domain {domain!r} is not whitelisted", None
        try:
            key = self.processor_key(domain)
        except CheckFailed as exc:
            return 401, f"processor certificate unusable: {exc}", None
        # CHOICE: guidelines 5.3 (400) rather than spec 8.8 step 5 (403) for an invalid signature.
        if not verify_signature(key, raw, headers.get(signature_header)):
            return 400, f"{signature_header} missing or invalid for the raw body", None
        try:
            body = json.loads(raw)
            check_fields(body, "callback (8.6)", {"controller_id": "string", "status_callback_url": "string",
                                                  "subject_request_id": "string", "request_status": "status",
                                                  "expected_completion_time": "time"},
                         {"results_url": "string", "results_count": "count", "api_version": "string"})
        except (ValueError, UnicodeDecodeError, CheckFailed) as exc:
            return 400, f"payload rejected: {exc}", None
        if body["status_callback_url"] != self.own_url:  # 8.8 step 6: "Return" -> acknowledged, not processed
            return 202, f"ignored: status_callback_url {body['status_callback_url']!r} != {self.own_url!r}", None
        return 202, "accepted", body

    def receive(self, headers, raw):
        code, reason, body = self.authenticate(headers, raw)
        with self.lock:
            if body is not None:
                self.callbacks.append(body)
                self.seen.add((body["subject_request_id"], body["request_status"]))
                reason = f"accepted {body['subject_request_id']} {body['request_status']}"
            elif code >= 400:
                self.rejected += 1
            else:
                self.ignored += 1
            print(f"callback #{len(self.callbacks) + self.rejected + self.ignored}: {code} {reason}", file=sys.stderr)
        return code, reason

    def complete(self):
        with self.lock:
            return self.wanted <= self.seen

    def summary(self):
        with self.lock:
            return {"callbacks": list(self.callbacks), "rejected": self.rejected, "ignored": self.ignored}


def make_callback_handler(listener):
    class CallbackHandler(http.server.BaseHTTPRequestHandler):
        timeout = 30

        def do_POST(self):
            if urlsplit(self.path).path != listener.args.path:
                return self.reply(404, "unknown path")
            code, reason = listener.receive(self.headers, self.read_body())
            self.reply(code, reason)
            if listener.complete():
                listener.done.set()

        def read_body(self):
            if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))
            chunks = []
            while (size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)

        def reply(self, code, reason):
            body = {"status": "accepted"} if code == 202 else {"error": {"code": code, "message": reason}}
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_):
            pass

    return CallbackHandler


def cmd_listen(args):
    listener = CallbackListener(args)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), make_callback_handler(listener))
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    server.handle_error = lambda _req, addr: print(f"listener: connection from {addr} failed: {sys.exc_info()[1]}",
                                                   file=sys.stderr)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    if args.ready_file:
        open(args.ready_file, "w").close()
    try:
        listener.processor_key(base_host(args))  # warm the certificate cache; failures are retried per callback
    except CheckFailed as exc:
        print(f"listener: certificate prefetch failed (will retry per callback): {exc}", file=sys.stderr)
    finished = listener.done.wait(args.timeout)
    server.shutdown()
    server.server_close()
    result = listener.summary()
    if not finished:
        missing = sorted(f"{i}:{s}" for i, s in listener.wanted - listener.seen)
        seen = [f"{c['subject_request_id']}:{c['request_status']}" for c in result["callbacks"]]
        raise CheckFailed(f"listen: timeout after {args.timeout}s; missing {missing}; seen {seen}; "
                          f"rejected {result['rejected']}, ignored {result['ignored']}",
                          {**result, "timed_out": True, "missing": missing})
    return result


# ---------------------------------------------------------------- selftest (no network)

def make_test_certificate(name, key, issuer=None, issuer_key=None, is_ca=False):
    now = dt.datetime.now(dt.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer.subject if issuer else subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if is_ca:
        builder = builder.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                        critical=True)
    else:
        builder = (builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def cmd_selftest(_args):
    passed = []

    def expect(condition, label):
        require(condition, f"selftest: {label}")
        passed.append(label)

    body = b'{"controller_id":"c","subject_request_id":"a7551968-d5d6-44b2-9831-815ac9017798"}'
    tampered = body.replace(b"a7551968", b"a7551969")
    for name, new_key in {"EC P-256": lambda: ec.generate_private_key(ec.SECP256R1()),
                          "RSA-2048": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)}.items():
        key, other = new_key(), new_key()
        signature = sign_like_processor(key, body)
        expect(verify_signature(key.public_key(), body, signature), f"{name}: valid signature accepted")
        folded = "\n".join(signature[i:i + 40] for i in range(0, len(signature), 40))
        expect(verify_signature(key.public_key(), body, folded), f"{name}: line-folded header accepted")
        expect(not verify_signature(key.public_key(), tampered, signature), f"{name}: one-byte-changed body rejected")
        expect(not verify_signature(key.public_key(), body, sign_like_processor(other, body)),
               f"{name}: signature from another key rejected")
        expect(not verify_signature(key.public_key(), body, "not base64!"), f"{name}: garbage header rejected")
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = make_test_certificate("Test Root", ca_key, is_ca=True)
    leaf = make_test_certificate("localhost", leaf_key, ca, ca_key)
    verify_certificate_chain([leaf], [ca], "localhost")
    passed.append("CA-issued leaf for localhost accepted")
    for label, chain, roots, domain in [("leaf for another domain rejected", [leaf], [ca], "example.com"),
                                        ("self-signed leaf rejected", [make_test_certificate("localhost", leaf_key)],
                                         [ca], "localhost"),
                                        ("leaf from an untrusted CA rejected", [leaf],
                                         [make_test_certificate("Other", ca_key, is_ca=True)], "localhost")]:
        try:
            verify_certificate_chain(chain, roots, domain)
            expect(False, label)
        except CheckFailed:
            passed.append(label)
    expect(is_rfc3339("2018-10-02T15:00:01Z") and is_rfc3339("2018-10-02T15:00:01.123456789+02:00")
           and not is_rfc3339("2018-10-02 15:00:01") and not is_rfc3339("2018-13-02T15:00:01Z"), "RFC 3339 parsing")
    expect(error_shape_ok({"error": {"code": 400, "errors": [{"domain": "d", "reason": "r", "message": "m"}]}}, 400)
           and not error_shape_ok({"error": {"code": "400"}}, 400) and not error_shape_ok({}, 400), "error shape")
    return {"selftest": "ok", "passed": passed}


# ---------------------------------------------------------------- CLI

def common_options(suppress_defaults):
    parser = argparse.ArgumentParser(add_help=False)
    default = (lambda v: argparse.SUPPRESS) if suppress_defaults else (lambda v: v)
    parser.add_argument("--base", default=default(None),
                        help="processor OpenDSR base URL incl. major version, e.g. https://localhost:8443/opendsr/v1")
    parser.add_argument("--token", default=default(None),
                        help="sent as 'Authorization: Bearer TOKEN' (not to discovery or the certificate download)")
    parser.add_argument("--ca", default=default(None), help="PEM CA file: TLS trust and processor-certificate root")
    parser.add_argument("--legacy", action="store_true", default=default(False),
                        help="use /opengdpr_requests and X-OpenGDPR-* response headers (spec 10.1)")
    return parser


def build_parser():
    parser = argparse.ArgumentParser(
        parents=[common_options(False)], description="Independent OpenDSR 2.0 controller-side test client.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Common options (--base --token --ca --legacy) may be given before or after the subcommand.\n"
               "stdout: exactly one JSON object. Exit codes: 0 success (including a processor refusal, reported as\n"
               "{\"status\": code, \"body\": ...}); 1 check failure, network/TLS error or listen timeout (message on\n"
               "stderr; listen also prints its partial JSON with \"timed_out\": true); 2 command-line usage error.")
    sub = parser.add_subparsers(dest="command", required=True)
    common = [common_options(True)]
    sub.add_parser("discover", parents=common, help="GET /discovery, verify properties and the certificate chain")
    create = sub.add_parser("create", parents=common, help="POST a request (7.1.1) and verify the 201 response")
    create.add_argument("--type", required=True, choices=sorted(REQUEST_TYPES))
    create.add_argument("--email", required=True)
    create.add_argument("--regulation", default="gdpr")
    create.add_argument("--callback", action="extend", nargs="+", metavar="URL", help="status_callback_urls entry")
    create.add_argument("--request-id", help="subject_request_id (default: fresh lowercase UUIDv4)")
    create.add_argument("--omit", action="append", metavar="FIELD", help="drop a top-level field (repeatable)")
    create.add_argument("--set", action="append", metavar="FIELD=JSONVALUE", help="set a top-level field (repeatable)")
    for name, text in (("status", "GET /requests/ID and verify the 200 response (8.3)"),
                       ("cancel", "DELETE /requests/ID and verify the 202 response (9.2)")):
        sub.add_parser(name, parents=common, help=text).add_argument("id", metavar="ID")
    listen = sub.add_parser("listen", parents=common, help="HTTPS callback receiver on 127.0.0.1 (8.6, 8.8)")
    listen.add_argument("--port", type=int, required=True)
    listen.add_argument("--cert", required=True, help="PEM server certificate (chain) for the listener")
    listen.add_argument("--key", required=True, help="PEM private key for --cert")
    listen.add_argument("--path", default="/opendsr/callbacks", help="callback path (default /opendsr/callbacks)")
    listen.add_argument("--until", action="append", required=True, metavar="ID:STATUS",
                        help="stop once a verified callback with this id and request_status arrived (repeatable)")
    listen.add_argument("--timeout", type=float, default=120.0, help="seconds (default 120)")
    listen.add_argument("--ready-file", help="created once the socket is listening")
    sub.add_parser("selftest", parents=common, help="offline check of signature/certificate verification")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "selftest" and not (args.base and args.ca):
        parser.error(f"{args.command} needs --base and --ca")
    commands = {"discover": cmd_discover, "create": cmd_create, "status": cmd_status, "cancel": cmd_cancel,
                "listen": cmd_listen, "selftest": cmd_selftest}
    try:
        result = commands[args.command](args)
    except CheckFailed as exc:
        if exc.result is not None:
            print(json.dumps(exc.result))
        print(f"opendsr client: FAIL: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
