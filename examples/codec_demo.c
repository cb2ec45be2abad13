/*
 * codec_demo.c — the README's program: parse a URL, build the opening
 * handshake, parse a server frame in place. Built against an installed
 * mmws by tests/install_test.sh (pkg-config and CMake find_package).
 */
#include <mmws/mmws.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    const char *s = "wss://fstream.binance.com/ws/btcusdt@bookTicker";
    mmws_url url;
    int rc = mmws_url_parse(s, strlen(s), 0, 0, &url);
    if (rc) { fprintf(stderr, "url: %s\n", mmws_strerror(rc)); return 1; }

    char key[MMWS_HS_KEY_LEN + 1], req[1024];
    size_t req_len;
    mmws_handshake_key(key);
    mmws_handshake_request hr = {.url = &url, .key = key};
    if (mmws_handshake_build(&hr, req, sizeof req, &req_len)) return 1;
    fwrite(req, 1, req_len, stdout);           /* what goes on the wire */

    /* Frames from the server are parsed in place, zero-copy. */
    static const uint8_t in[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
    mmws_frame_parser fp;
    mmws_frame f;
    mmws_frame_parser_init(&fp, 1 << 20, MMWS_FRAME_VALIDATE_UTF8);
    if (mmws_frame_parse(&fp, in, sizeof in, &f) == 0)
        printf("text: %.*s\n", (int)f.payload_len, (const char *)f.payload);
    else
        printf("fail with close %u: %s\n", fp.close_code, fp.detail);
    return 0;
}
