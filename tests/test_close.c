/*
 * test_close.c — close codes (RFC 6455 7.4, IANA registry) over the whole
 * 16-bit range, and close payload parsing.
 */
#include "test.h"

static void code_sets(void) {
    unsigned sendable = 0, receivable = 0;
    for (unsigned c = 0; c <= 65535; c++) {
        int want_send = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) ||
                        (c >= 3000 && c <= 4999);
        int want_recv = want_send || (c >= 1012 && c <= 1014);
        CHECK_EQ(mmws_close_code_valid_send(c), want_send);
        CHECK_EQ(mmws_close_code_valid_recv(c), want_recv);
        sendable += (unsigned)want_send;
        receivable += (unsigned)want_recv;
    }
    CHECK_EQ(sendable, 4 + 5 + 2000);
    CHECK_EQ(receivable, sendable + 3);
    /* Never on the wire, either way. */
    static const unsigned never[] = {1005, 1006, 1015};
    for (size_t i = 0; i < 3; i++) {
        CHECK_EQ(mmws_close_code_valid_send(never[i]), 0);
        CHECK_EQ(mmws_close_code_valid_recv(never[i]), 0);
    }
    CHECK_STR(mmws_close_code_name(1000), "normal closure");
    CHECK_STR(mmws_close_code_name(1009), "message too big");
    CHECK_STR(mmws_close_code_name(4001), "application");
    CHECK_STR(mmws_close_code_name(2000), "invalid");
}

static void parse_payloads(void) {
    unsigned code = 0;
    const uint8_t *reason = NULL;
    size_t rlen = 99;
    CHECK_RC(mmws_close_parse((const uint8_t *)"", 0, &code, &reason, &rlen),
             0);
    CHECK_EQ(code, MMWS_CLOSE_NO_STATUS);
    CHECK_EQ(rlen, 0);
    CHECK_RC(mmws_close_parse((const uint8_t *)"\x03\xE9" "going", 7, &code,
                              &reason, &rlen), 0);
    CHECK_EQ(code, 1001);
    CHECK_MEM(reason, rlen, "going", 5);
    CHECK_RC(mmws_close_parse((const uint8_t *)"\x03", 1, &code, &reason,
                              &rlen), MMWS_EPROTO);
    CHECK_RC(mmws_close_parse((const uint8_t *)"\x03\xED", 2, &code, &reason,
                              &rlen), MMWS_EPROTO); /* 1005 */
    CHECK_RC(mmws_close_parse((const uint8_t *)"\x03\xE8\xFF", 3, &code,
                              &reason, &rlen), MMWS_EUTF8);
    CHECK_RC(mmws_close_parse((const uint8_t *)"\x03\xE8" "caf\xC3\xA9", 7,
                              &code, &reason, &rlen), 0);
    uint8_t big[126] = {0x03, 0xE8};
    memset(big + 2, 'a', sizeof big - 2);
    CHECK_RC(mmws_close_parse(big, 125, &code, &reason, &rlen), 0);
    CHECK_RC(mmws_close_parse(big, 126, &code, &reason, &rlen), MMWS_EPROTO);
    CHECK_RC(mmws_close_parse(NULL, 2, &code, &reason, &rlen), MMWS_EINVAL);
}

static void error_names(void) {
    /* Every code has a name and a description; unknown values are safe. */
    for (int c = -100; c <= 0; c++) {
        CHECK(mmws_strerror(c) != NULL);
        CHECK(mmws_errname(c) != NULL);
    }
    CHECK_STR(mmws_errname(MMWS_EPROTO), "MMWS_EPROTO");
    CHECK_STR(mmws_strerror(MMWS_ETOOBIG),
              "frame or message larger than the maximum");
    CHECK_STR(mmws_strerror(12345), "unknown error");
    CHECK_STR(mmws_version(), MMWS_VERSION_STRING);
}

int main(void) {
    RUN(code_sets);
    RUN(parse_payloads);
    RUN(error_names);
    return TEST_END("test_close");
}
