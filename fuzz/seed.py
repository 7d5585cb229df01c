#!/usr/bin/env python3
"""Seeds fuzz/corpus/TARGET/ from the repository: the fixture and case files, the SIP fixture
messages (whole and as TCP streams in several splits), ClientHellos made by Python's own TLS
(no network: a memory BIO) and DNS queries for the names the dns_query target serves.

Run once from the repository root (`python3 fuzz/seed.py`); `scripts/fuzz` then grows and
minimizes the corpora. Files already there stay."""

import hashlib
import pathlib
import ssl
import struct

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def put(target, data):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


def files(*globs):
    for pattern in globs:
        yield from sorted(ROOT.glob(pattern))


# SIP: every fixture message; streams of the valid ones (which carry Content-Length).
valid = []
for path in files("fixtures/sip/valid/*.sip", "fixtures/sip/malformed/*.sip"):
    data = path.read_bytes()
    put("sip_message", data)
    if "/valid/" in str(path) and b"content-length" in data.lower():
        valid.append(data)
stream = b"\r\n\r\n".join(valid)
for mode, lengths in [(0, b""), (0, bytes([0, 6, 200])), (1, bytes([16])), (0, bytes([255]))]:
    put("sip_framing", bytes([mode, len(lengths)]) + lengths + stream)
for data in valid:
    put("sip_framing", bytes([1, 1, 3]) + data)


# TLS: ClientHellos of TLS 1.3 and of TLS 1.2 only, with a server name.
def client_hello(maximum):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.maximum_version = maximum
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="sip.fuzz.test")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


for version in [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2]:
    hello = client_hello(version)
    put("client_hello", bytes([0]) + hello)
    put("client_hello", bytes([2, 4, 100]) + hello)
put("client_hello", bytes([0]) + (ROOT / "fixtures/sip/valid/options-sipsak.sip").read_bytes())


# DNS: queries (flags byte: bit 0 = TCP) for what the fuzz zones hold, with and without EDNS.
def query(qid, name, qtype, edns=None):
    header = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 1 if edns else 0)
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".") if label)
    message = header + qname + b"\0" + struct.pack(">HH", qtype, 1)
    if edns:
        message += b"\0" + struct.pack(">HHIH", 41, edns, 0, 0)
    return message


NAPTR, SRV, A, AAAA, CNAME, SOA = 35, 33, 1, 28, 5, 6
queries = [
    ("fuzz.test", NAPTR, None),
    ("_sip._tcp.fuzz.test", SRV, None),
    ("_sip._tcp.fuzz.test", SRV, 1232),
    ("_sip._tcp.fuzz.test", SRV, 65535),
    ("_sip._udp.fuzz.test", SRV, 4096),
    ("none.fuzz.test", SRV, None),
    ("s1.fuzz.test", A, None),
    ("s3.fuzz.test", A, None),
    ("s2.fuzz.test", AAAA, 512),
    ("alias.fuzz.test", CNAME, None),
    ("timeout.fuzz.test", A, None),
    ("servfail.fuzz.test", SRV, None),
    ("missing.fuzz.test", A, None),
    ("fuzz.test", SOA, None),
    ("_sip._udp.other.test", SRV, None),
    ("example.org", A, None),
]
for i, (name, qtype, edns) in enumerate(queries):
    message = query(0x1000 + i, name, qtype, edns)
    put("dns_query", bytes([0]) + message)
    put("dns_query", bytes([1]) + message)

# The loaders: every file of their kind in the repository.
for path in files("fixtures/zones/**/*.yaml"):
    put("zone_file", path.read_bytes())
for path in files("cases/**/*.yaml", "fixtures/cases/**/*.yaml"):
    put("case_file", path.read_bytes())
for path in files("fixtures/profiles/*.yaml"):
    put("profile_file", path.read_bytes())
for path in files("fixtures/labs/*.yaml"):
    put("lab_file", path.read_bytes())
