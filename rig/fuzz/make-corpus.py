#!/usr/bin/env python3
"""Builds the seed corpora in fixtures/corpus/<target>/ from fixtures/vectors/.

Content targets take `<base path>\\n<payload>`; link_format and coap_message
take the raw bytes; registry_register takes `<scale><len><datagram>...`;
path_parse gets a few hand-picked paths. Re-run after adding vectors:
    python3 rig/fuzz/make-corpus.py
"""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
VEC = ROOT / "fixtures" / "vectors"
OUT = ROOT / "fixtures" / "corpus"

TARGETS = {
    "0": "content_text",
    "60": "content_cbor",
    "110": "content_senml_json",
    "112": "content_senml_cbor",
    "11542": "content_tlv",
    "11543": "content_lwm2m_json",
    "11544": "content_lwm2m_cbor",
    "40": "link_format",
}


def write(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    (d / safe).write_bytes(data)


def content_vectors():
    for f in sorted(VEC.glob("*.vec")):
        blocks = re.split(r"^\[vector ([^\]]+)\]\s*$", f.read_text(), flags=re.M)
        for name, body in zip(blocks[1::2], blocks[2::2]):
            kv = {"hex": [], "text": []}
            for line in body.splitlines():
                if line.startswith("#") or " = " not in line and not line.rstrip().endswith("="):
                    continue
                k, _, v = line.partition("=")
                k, v = k.strip(), v[1:] if v.startswith(" ") else v
                if k in ("hex", "text"):
                    kv[k].append(v)
                else:
                    kv.setdefault(k, v.strip())
            target = TARGETS.get(kv.get("format"))
            if target is None:
                continue
            if kv["hex"]:
                payload = bytes.fromhex("".join(kv["hex"]).replace(" ", ""))
            else:
                payload = "".join(kv["text"]).encode()
            if target == "link_format":
                write(target, name, payload)
            else:
                write(target, name, kv.get("base", "/").encode() + b"\n" + payload)


def coap_vectors():
    msgs = {}
    for f in ("messages.txt", "malformed.txt"):
        name = None
        for line in (VEC / "coap" / f).read_text().splitlines():
            m = re.match(r"^\[(.+)\]$", line)
            if m:
                name = m.group(1)
            elif line.startswith("hex =") and name:
                msgs[name] = bytes.fromhex(line[5:].replace(" ", ""))
    for name, b in msgs.items():
        write("coap_message", name, b)
    # Registry: Register, then an Update and a De-register on location /rd/1.
    reg = msgs.get("lwm2m-register")
    if reg:
        update = bytes([0x42, 0x02, 0x12, 0x35, 0xAA, 0xBB, 0xB2, ord("r"), ord("d"), 0x01, ord("1"), 0x47]) + b"lt=7200"
        delete = bytes([0x42, 0x04, 0x12, 0x36, 0xAA, 0xBC, 0xB2, ord("r"), ord("d"), 0x01, ord("1")])
        data = bytes([0])
        for d in (reg, update, delete):
            assert len(d) < 256
            data += bytes([len(d)]) + d
        write("registry_register", "register-update-deregister", data)
        write("registry_register", "register", bytes([0, len(reg)]) + reg)


def paths():
    for i, p in enumerate(["/", "/3", "/3/0", "/3/0/1", "/3/0/6/2", "/65535", "/1/65534/0/65534", "/03", "/3/", "3/0"]):
        write("path_parse", f"{i:02}", p.encode())


def ops():
    # Structured target: any bytes are a valid `Case` (arbitrary); two
    # deterministic seeds give libFuzzer a start with a few operations.
    write("coap_endpoint_ops", "counting", bytes(range(256)))
    write("coap_endpoint_ops", "sends", bytes([1, 0, 2, 3, 4, 5]) + bytes([10, 0, 0, 1, 1, 0, 0, 0, 0, 0] * 12))


if __name__ == "__main__":
    ops()
    content_vectors()
    coap_vectors()
    paths()
    for d in sorted(OUT.iterdir()):
        print(d.name, len(list(d.iterdir())))
