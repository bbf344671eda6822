"""GET coaps://127.0.0.1:PORT/echo with aiocoap + DTLSSocket (tinydtls), PSK.

Usage: aiocoap_psk_get.py PORT IDENTITY KEY
Prints the response payload, or "ERROR: ..." and exits 1. Used by tests/interop_aiocoap.rs.
"""

import asyncio
import sys

import aiocoap


async def main(port: str, identity: str, key: str) -> int:
    uri = f"coaps://127.0.0.1:{port}/echo"
    ctx = await aiocoap.Context.create_client_context()
    ctx.client_credentials.load_from_dict(
        {uri: {"dtls": {"psk": {"ascii": key}, "client-identity": {"ascii": identity}}}}
    )
    try:
        req = aiocoap.Message(code=aiocoap.GET, uri=uri)
        resp = await asyncio.wait_for(ctx.request(req).response, timeout=10)
        print(resp.code, resp.payload.decode(errors="replace"))
        return 0
    except Exception as e:  # noqa: BLE001 - any failure is reported to the Rust test
        print(f"ERROR: {type(e).__name__}: {e}")
        return 1
    finally:
        await ctx.shutdown()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(*sys.argv[1:4])))
