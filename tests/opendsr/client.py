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
import argparse, base64, datetime as dt, http.client, http.server, ipaddress, json, re, ssl, sys, threading, uuid
from urllib.parse import quote, urlsplit
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
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

def parse_json(raw, what):
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise CheckFailed(f"{what}: body is not JSON: {raw[:200]!r}")

def is_rfc3339(value):
    if not isinstance(value, str) or not RFC3339.match(value):
        return False
    try:  # the regex fixes the RFC 3339 shape, fromisoformat the ranges (month 13, hour 25, ...)
        dt.datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", re.sub(r"Z$", "+00:00", value.upper())))
        return True
    except ValueError:
        return False

FIELD_KINDS = {"string": lambda v: isinstance(v, str), "time": is_rfc3339,
               "count": lambda v: type(v) is int and v >= 0,
               "status": lambda v: isinstance(v, str) and v in REQUEST_STATUSES}

def check_fields(body, what, required, optional):
    require(isinstance(body, dict), f"{what}: body is not a JSON object")
    for key in required:
        require(key in body, f"{what}: REQUIRED property {key!r} is missing")
    for key, kind in {**required, **optional}.items():
        require(key not in body or FIELD_KINDS[kind](body[key]),
                f"{what}: property {key!r} is not a valid {kind}: {body.get(key)!r}")

def error_shape_ok(body, status):
    """7.5/7.6: {"error": {"code": <int == HTTP status>, "message"?: str, "errors"?: [{domain, reason, message}]}}"""
    err = body.get("error") if isinstance(body, dict) else None
    items = err.get("errors", []) if isinstance(err, dict) else None
    return (isinstance(items, list) and type(err.get("code")) is int and err["code"] == status
            and isinstance(err.get("message", ""), str)
            and all(isinstance(i, dict) and all(isinstance(i.get(k), str) for k in ("domain", "reason", "message"))
                    for i in items))

# ---------------------------------------------------------------- signatures and certificates (4.1, 4.2)
def sign_like_processor(private_key, body):
    if isinstance(private_key, rsa.RSAPrivateKey):
        return base64.b64encode(private_key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()
    return base64.b64encode(private_key.sign(body, ec.ECDSA(hashes.SHA256()))).decode()

def decode_base64(text):
    """Strict standard base64; whitespace (e.g. header line folding as in the 7.4 example) is ignored."""
    return base64.b64decode("".join(text.split()), validate=True)

def verify_signature(public_key, body, signature_b64):
    """True iff signature_b64 (base64) is a valid processor signature over the raw bytes `body`."""
    try:
        signature = decode_base64(signature_b64 or "")
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, body, ec.ECDSA(hashes.SHA256()))
        else:
            return False  # FIPS 186-4 key types only
        return bool(signature)
    except (InvalidSignature, ValueError):
        return False

def verify_certificate_chain(chain, roots, domain):
    """4.1, guidelines 2.ii-vi: CA-issued, unexpired, valid for `domain`, not self-signed (revocation: not checked)."""
    require(chain, "processor certificate: no PEM certificate found")
    require(chain[0].issuer != chain[0].subject, "processor certificate is self-signed (4.1: MUST NOT be used)")
    try:
        name = x509.IPAddress(ipaddress.ip_address(domain))
    except ValueError:
        name = x509.DNSName(domain)
    verifier = PolicyBuilder().store(Store(roots)).time(dt.datetime.now(dt.timezone.utc)).build_server_verifier(name)
    try:
        verifier.verify(chain[0], chain[1:])
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
    context = ssl.create_default_context(cafile=ca)
    conn = (http.client.HTTPSConnection(parts.hostname, parts.port, timeout=30, context=context)
            if parts.scheme == "https" else http.client.HTTPConnection(parts.hostname, parts.port, timeout=30))
    headers = {"Accept": accept, **({"Authorization": f"Bearer {token}"} if token is not None else {}),
               **({"Content-Type": "application/json"} if body is not None else {})}
    try:
        conn.request(method, (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), body, headers)
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise CheckFailed(f"{method} {url} failed: {exc}")
    finally:
        conn.close()

def refusal(status, raw):
    """A non-success answer is reported, not failed; error_shape_ok (7.5/7.6) when status >= 400."""
    try:
        body = parse_json(raw, "")
    except CheckFailed:
        body = raw.decode("utf-8", "replace")
    result = {"status": status, "body": body}
    if status >= 400:
        result["error_shape_ok"] = error_shape_ok(body, status)
    return result

def verify_signed_response(args, headers, raw, key, what):
    """Domain header == base host and signature header valid over the RAW body; only then parse JSON."""
    signature_header, domain_header = header_names(args.legacy)
    domain = headers.get(domain_header)
    require(domain is not None, f"{what}: missing {domain_header} header")
    require(domain.strip().lower() == base_host(args),
            f"{what}: {domain_header} {domain!r} does not equal the processor domain {base_host(args)!r}")
    require(verify_signature(key, raw, headers.get(signature_header)),
            f"{what}: {signature_header} header missing or not valid over the raw body for the processor certificate")
    return parse_json(raw, what)

# ---------------------------------------------------------------- discovery (6)
def check_discovery_document(doc, domain):
    require(isinstance(doc, dict) and isinstance(doc.get("api_version"), str),
            "discovery: body must be an object with REQUIRED string api_version (6.3)")
    identities = doc.get("supported_identities")
    require(isinstance(identities, list), "discovery: REQUIRED supported_identities must be an array (6.3)")
    for item in identities:
        require(isinstance(item, dict) and isinstance(item.get("identity_type"), str)
                and isinstance(item.get("identity_format"), str) and item["identity_type"] in IDENTITY_TYPES
                and item["identity_format"] in IDENTITY_FORMATS,
                f"discovery: bad supported_identities item (needs 5.1 identity_type + 5.2 identity_format): {item!r}")
    types = doc.get("supported_subject_request_types")
    require(isinstance(types, list) and all(isinstance(t, str) and t in REQUEST_TYPES for t in types),
            f"discovery: supported_subject_request_types must be an array of 6.2 strings: {types!r}")
    # CHOICE: 6.3 "The domain MUST match that of the discovery callback" read as: certificate URL host == domain.
    certificate_url = doc.get("processor_certificate")
    url = urlsplit(certificate_url if isinstance(certificate_url, str) else "")
    require(url.scheme in ("http", "https") and (url.hostname or "").lower() == domain,
            f"discovery: processor_certificate must be an http(s) URL on {domain}: {certificate_url!r}")

def discover_processor(args):
    """GET {base}/discovery (no token), download + verify the processor certificate. Returns (doc, chain)."""
    status, _, raw = http_request("GET", base_url(args) + "/discovery", args.ca)
    require(status == 200, f"discovery: expected HTTP 200, got {status}: {raw[:300]!r}")
    doc = parse_json(raw, "discovery")
    check_discovery_document(doc, base_host(args))
    status, _, pem = http_request("GET", doc["processor_certificate"], args.ca, accept="application/x-pem-file, */*")
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
        **({"status_callback_urls": list(args.callback)} if args.callback else {}),
    }
    for field in args.omit or []:
        request.pop(field, None)
    for assignment in args.set or []:
        field, sep, value = assignment.partition("=")
        require(sep and field, f"--set expects FIELD=JSONVALUE, got {assignment!r}")
        request[field] = parse_json(value, f"--set {field}")
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
    # CHOICE: 7.3 lists processor_signature as a REQUIRED body property, but 7.4 carries it only in the header:
    # the header is what is verified; a body processor_signature is only reported (body_signature_present).
    check_fields(body, what, {"controller_id": "string", "expected_completion_time": "time", "received_time": "time",
                              "encoded_request": "string", "subject_request_id": "string"},
                 {"processor_signature": "string", "api_version": "string"})
    require(body["subject_request_id"] == request.get("subject_request_id"),
            f"{what}: subject_request_id {body['subject_request_id']!r} does not echo the request's")
    try:
        require(decode_base64(body["encoded_request"]) == sent, f"{what}: encoded_request is not the POSTed bytes")
    except ValueError:
        raise CheckFailed(f"{what}: encoded_request is not valid base64")
    return {"status": 201, "subject_request_id": body["subject_request_id"], "response": body,
            "signature_valid": True, "body_signature_present": "processor_signature" in body}

def call_existing_request(args, method, expected, what, required, optional):
    _, chain = discover_processor(args)
    status, headers, raw = http_request(method, f"{requests_url(args)}/{quote(args.id, safe='')}", args.ca, args.token)
    if status != expected:
        return refusal(status, raw)
    body = verify_signed_response(args, headers, raw, chain[0].public_key(), what)
    check_fields(body, what, required, optional)
    require(body["subject_request_id"] == args.id, f"{what}: subject_request_id does not match {args.id!r}")
    result = {"status": status, "response": body, "signature_valid": True}
    return {**result, "body_signature_present": "processor_signature" in body} if method == "DELETE" else result

def cmd_status(args):
    return call_existing_request(args, "GET", 200, "status response (8.3)",
                                 {"controller_id": "string", "expected_completion_time": "time",
                                  "subject_request_id": "string", "request_status": "status"},
                                 {"api_version": "string", "results_url": "string", "results_count": "count"})

def cmd_cancel(args):  # CHOICE: body processor_signature as in cmd_create
    return call_existing_request(args, "DELETE", 202, "cancellation response (9.2)",
                                 {"controller_id": "string", "received_time": "time", "subject_request_id": "string"},
                                 {"processor_signature": "string", "api_version": "string"})

# ---------------------------------------------------------------- callbacks (8.6, 8.8, security guidelines)
class CallbackListener:
    def __init__(self, args):
        self.args, self.own_url = args, f"https://localhost:{args.port}{args.path}"
        self.wanted = {tuple(pair.rsplit(":", 1)) for pair in args.until}
        require(all(len(w) == 2 and w[0] and w[1] in REQUEST_STATUSES for w in self.wanted),
                f"--until expects ID:STATUS with a section 8 status, got {args.until!r}")
        self.seen, self.callbacks, self.rejected, self.ignored = set(), [], 0, 0
        self.lock, self.cert_lock, self.done, self.cache = threading.Lock(), threading.Lock(), threading.Event(), {}

    def processor_key(self, domain):
        """8.8 steps 2-3: public key from the cache, else via /discovery (certificate chain verified there).
        A listener lives for minutes, so a cached certificate is not re-checked for expiry or revocation."""
        with self.cert_lock:
            if domain not in self.cache:
                self.cache[domain] = discover_processor(self.args)[1][0].public_key()
            return self.cache[domain]

    def authenticate(self, headers, raw):
        """Returns (http_status, reason, body or None). JSON is parsed only after the signature verified."""
        names = [header_names(self.args.legacy), header_names(not self.args.legacy)]  # 10.1: honour both
        signature_header, domain_header = next((n for n in names if headers.get(n[1]) is not None), names[0])
        domain = (headers.get(domain_header) or "").strip().lower()
        if domain != base_host(self.args):  # guidelines 1: the whitelist is the --base processor only
            return 401, f"processor domain {domain!r} is not whitelisted", None
        try:
            key = self.processor_key(domain)
        except CheckFailed as exc:
            return 401, f"processor certificate unusable: {exc}", None
        # CHOICE: security guidelines 5.3 (400), not spec 8.8 step 5 (403), for an invalid signature.
        if not verify_signature(key, raw, headers.get(signature_header)):
            return 400, f"{signature_header} missing or invalid for the raw body", None
        try:
            body = parse_json(raw, "callback")
            check_fields(body, "callback (8.6)", {"controller_id": "string", "status_callback_url": "string",
                                                  "subject_request_id": "string", "request_status": "status",
                                                  "expected_completion_time": "time"},
                         {"results_url": "string", "results_count": "count", "api_version": "string"})
        except CheckFailed as exc:
            return 400, f"payload rejected: {exc}", None
        if body["status_callback_url"] != self.own_url:  # 8.8 step 6 "Return": acknowledged, not processed
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
            complete = self.wanted <= self.seen
        return code, reason, complete

class CallbackHandler(http.server.BaseHTTPRequestHandler):
    timeout = 30

    def do_POST(self):
        listener = self.server.listener
        if urlsplit(self.path).path != listener.args.path:
            return self.reply(404, "unknown path")
        if not self.headers.get("Content-Length", "").isdigit():  # chunked bodies are not supported
            return self.reply(411, "Content-Length required")
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        code, reason, complete = listener.receive(self.headers, raw)
        self.reply(code, reason)
        if complete:  # only after the 202 went out, so the processor sees its last callback succeed
            listener.done.set()

    def reply(self, code, reason):
        data = json.dumps({"status": "accepted"} if code == 202 else {"error": {"code": code, "message": reason}})
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data.encode())))
        self.end_headers()
        self.wfile.write(data.encode())

    def log_message(self, *_):
        pass

def cmd_listen(args):
    listener = CallbackListener(args)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), CallbackHandler)
    server.listener = listener
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    server.handle_error = lambda _r, addr: print(f"listener: {addr} failed: {sys.exc_info()[1]}", file=sys.stderr)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    if args.ready_file:
        open(args.ready_file, "w").close()
    try:
        listener.processor_key(base_host(args))  # warm the certificate cache; failures are retried per callback
    except CheckFailed as exc:
        print(f"listener: certificate prefetch failed (retried per callback): {exc}", file=sys.stderr)
    finished = listener.done.wait(args.timeout)
    server.shutdown()
    server.server_close()
    with listener.lock:
        result = {"callbacks": list(listener.callbacks), "rejected": listener.rejected, "ignored": listener.ignored}
        missing = sorted(f"{i}:{s}" for i, s in listener.wanted - listener.seen)
    if not finished:
        seen = [f"{c['subject_request_id']}:{c['request_status']}" for c in result["callbacks"]]
        raise CheckFailed(f"listen: timeout after {args.timeout}s; missing {missing}; seen {seen}; "
                          f"rejected {result['rejected']}, ignored {result['ignored']}",
                          {**result, "timed_out": True, "missing": missing})
    return result

# ---------------------------------------------------------------- selftest (no network)
def cmd_selftest(_args):
    passed = []

    def expect(condition, label):
        require(condition, f"selftest: {label}")
        passed.append(label)

    body = b'{"controller_id":"c","subject_request_id":"a7551968-d5d6-44b2-9831-815ac9017798"}'
    tampered = body.replace(b"a7551968", b"a7551969")  # one byte changed
    for name, new_key in {"EC P-256": lambda: ec.generate_private_key(ec.SECP256R1()),
                          "RSA-2048": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)}.items():
        key, other = new_key(), new_key()
        signature = sign_like_processor(key, body)
        folded = "\n ".join(signature[i:i + 40] for i in range(0, len(signature), 40))  # as in the 7.4 example
        expect(verify_signature(key.public_key(), body, signature), f"{name}: valid signature accepted")
        expect(verify_signature(key.public_key(), body, folded), f"{name}: line-folded header accepted")
        expect(not verify_signature(key.public_key(), tampered, signature), f"{name}: one-byte-changed body rejected")
        expect(not verify_signature(key.public_key(), body, sign_like_processor(other, body)),
               f"{name}: signature from another key rejected")
    expect(is_rfc3339("2018-10-02T15:00:01Z") and is_rfc3339("2018-10-02T15:00:01.123456789+02:00")
           and not is_rfc3339("2018-10-02 15:00:01") and not is_rfc3339("2018-13-02T15:00:01Z"), "RFC 3339 parsing")
    return {"selftest": "ok", "passed": passed}

# ---------------------------------------------------------------- CLI
def common_options(suppress_defaults):
    parser = argparse.ArgumentParser(add_help=False)
    default = (lambda v: argparse.SUPPRESS) if suppress_defaults else (lambda v: v)
    parser.add_argument("--base", default=default(None), help="e.g. https://localhost:8443/opendsr/v1 (3.4)")
    parser.add_argument("--token", default=default(None), help="Bearer token (not sent to discovery / certificate URL)")
    parser.add_argument("--ca", default=default(None), help="PEM CA file: TLS trust and processor-certificate root")
    parser.add_argument("--legacy", action="store_true", default=default(False), help="OpenGDPR route + headers (10.1)")
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
                        help="exit 0 once verified callbacks with this id and request_status arrived (repeatable)")
    listen.add_argument("--timeout", type=float, default=120.0, help="seconds (default 120)")
    listen.add_argument("--ready-file", help="created once the socket is listening")
    sub.add_parser("selftest", parents=common, help="offline check of signature/certificate verification")
    return parser

def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "selftest" and not (args.base and args.ca):  # common options are SUPPRESSed in subparsers
        parser.error(f"{args.command} needs --base and --ca")
    try:
        print(json.dumps(globals()["cmd_" + args.command](args)))
        return 0
    except (CheckFailed, OSError, ValueError) as exc:  # OSError/ValueError: unreadable --ca/--cert, bad URL, ...
        if getattr(exc, "result", None) is not None:
            print(json.dumps(exc.result))
        print(f"opendsr client: FAIL: {exc}", file=sys.stderr)
        return 1

if __name__ == "__main__":
    sys.exit(main())
