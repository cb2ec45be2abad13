/* close.c — RFC 6455 7.4 close codes and close frame payloads. */
#include <mmws/codec.h>

int mmws_close_code_valid_send(unsigned code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

int mmws_close_code_valid_recv(unsigned code) {
    /* 1012-1014 are registered with IANA after RFC 6455 and are sent by
     * real servers on restart or overload; treating them as protocol errors
     * would turn a clean close into a failure. */
    return mmws_close_code_valid_send(code) || (code >= 1012 && code <= 1014);
}

const char *mmws_close_code_name(unsigned code) {
    switch (code) {
    case MMWS_CLOSE_NORMAL: return "normal closure";
    case MMWS_CLOSE_GOING_AWAY: return "going away";
    case MMWS_CLOSE_PROTOCOL_ERROR: return "protocol error";
    case MMWS_CLOSE_UNSUPPORTED_DATA: return "unsupported data";
    case MMWS_CLOSE_NO_STATUS: return "no status received";
    case MMWS_CLOSE_ABNORMAL: return "abnormal closure";
    case MMWS_CLOSE_INVALID_DATA: return "invalid frame payload data";
    case MMWS_CLOSE_POLICY: return "policy violation";
    case MMWS_CLOSE_TOO_BIG: return "message too big";
    case MMWS_CLOSE_MANDATORY_EXT: return "mandatory extension";
    case MMWS_CLOSE_INTERNAL_ERROR: return "internal error";
    case MMWS_CLOSE_SERVICE_RESTART: return "service restart";
    case MMWS_CLOSE_TRY_AGAIN_LATER: return "try again later";
    case MMWS_CLOSE_BAD_GATEWAY: return "bad gateway";
    case MMWS_CLOSE_TLS_HANDSHAKE: return "TLS handshake failure";
    default: break;
    }
    if (code >= 3000 && code <= 3999) return "registered (library/framework)";
    if (code >= 4000 && code <= 4999) return "application";
    return "invalid";
}

int mmws_close_parse(const uint8_t *payload, size_t len, unsigned *code,
                     const uint8_t **reason, size_t *reason_len) {
    if ((!payload && len) || !code || !reason || !reason_len)
        return MMWS_EINVAL;
    if (len == 0) {
        *code = MMWS_CLOSE_NO_STATUS;
        *reason = payload;
        *reason_len = 0;
        return 0;
    }
    if (len == 1 || len > MMWS_CONTROL_MAX_PAYLOAD) return MMWS_EPROTO;
    unsigned c = (unsigned)payload[0] << 8 | payload[1];
    if (!mmws_close_code_valid_recv(c)) return MMWS_EPROTO;
    if (mmws_utf8_check(payload + 2, len - 2) != 0) return MMWS_EUTF8;
    *code = c;
    *reason = payload + 2;
    *reason_len = len - 2;
    return 0;
}
