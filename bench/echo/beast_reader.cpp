// beast_reader.cpp — the Boost.Beast peer of the firehose benchmark
// (scripts/bench-pool.sh): reads the stream of a fresh mmws-sim started
// with --rate 0.
//
//   beast_reader URL SECONDS [CAFILE]
//
// Shaped like Beast's documented synchronous clients (resolve, connect,
// TLS handshake with peer and host name verification, WebSocket
// handshake), then ws.read() in a loop into one reused flat_buffer. Tuned
// the way a careful Beast user would: TCP_NODELAY, no permessage-deflate,
// the buffer reserved once. Beast validates UTF-8 in TEXT messages (it
// cannot be switched off). Counts messages for SECONDS after the first,
// checks that the update id "u" of each message is the previous one + 1,
// reads the clock every 256 messages, and prints messages per second as its
// last stdout line; stderr gets "messages=N seconds=T first_u=F gaps=G
// missing=M unparsed=X cpu_ns_per_msg=C" (as mmws-bench-read, lws_reader).

#include "echo_common.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <arpa/inet.h>
#include <openssl/ssl.h>

#include <cinttypes>
#include <iostream>
#include <string>

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;

namespace {

constexpr uint64_t clock_every = 256; // messages between clock reads

uint64_t cpu_ns() {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// The value of "u" in a simulator message, or 0 if there is none (the same
// bounded scan as the other readers').
uint64_t parse_u(unsigned char const* p, std::size_t len) {
    for (std::size_t i = 0; i + 4 <= len; i++) {
        if (p[i] == '"' && p[i + 1] == 'u' && p[i + 2] == '"' && p[i + 3] == ':') {
            uint64_t v = 0;
            for (i += 4; i < len && p[i] >= '0' && p[i] <= '9'; i++)
                v = v * 10u + static_cast<uint64_t>(p[i] - '0');
            return v;
        }
    }
    return 0;
}

template <class Stream>
void run(websocket::stream<Stream>& ws, echo_url const& url, double seconds) {
    websocket::permessage_deflate pmd;
    pmd.client_enable = false;
    ws.set_option(pmd);
    ws.read_message_max(1024 * 1024);

    std::string host = url.host;
    if (host.find(':') != std::string::npos) host = "[" + host + "]";
    host += ":";
    host += url.port;
    ws.handshake(host, url.path);

    beast::flat_buffer buf;
    buf.reserve(64 * 1024);
    uint64_t const limit = static_cast<uint64_t>(seconds * 1e9);
    uint64_t count = 0, first_u = 0, last_u = 0, gaps = 0, missing = 0, unparsed = 0;
    uint64_t t0 = 0, t1 = 0, cpu0 = 0;
    bool started = false;
    for (;;) {
        std::size_t n = ws.read(buf);
        auto const* p = static_cast<unsigned char const*>(buf.data().data());
        uint64_t u = parse_u(p, n);
        buf.consume(buf.size());
        if (!u) {
            unparsed++;
            continue;
        }
        if (!started) {
            started = true;
            t0 = t1 = echo_now_ns();
            first_u = last_u = u;
            cpu0 = cpu_ns();
            continue;
        }
        if (u != last_u + 1) {
            gaps++;
            if (u > last_u) missing += u - last_u - 1;
        }
        last_u = u;
        if (++count % clock_every == 0) {
            t1 = echo_now_ns();
            if (t1 - t0 >= limit) break;
        }
    }
    uint64_t const cpu = cpu_ns() - cpu0;
    double const el = static_cast<double>(t1 - t0) / 1e9;
    // Drop the connection without a close handshake: the firehose would
    // keep the close frame queued behind a backlog of messages.
    beast::get_lowest_layer(ws).close();
    std::fprintf(stderr,
                 "messages=%" PRIu64 " seconds=%.3f first_u=%" PRIu64 " gaps=%" PRIu64
                 " missing=%" PRIu64 " unparsed=%" PRIu64 " cpu_ns_per_msg=%.0f\n",
                 count, el, first_u, gaps, missing, unparsed,
                 static_cast<double>(cpu) / static_cast<double>(count));
    std::printf("%.0f\n", static_cast<double>(count) / el);
    std::fflush(stdout);
}

} // namespace

int main(int argc, char* argv[]) {
    if (argc != 3 && argc != 4) {
        std::fprintf(stderr, "usage: %s URL SECONDS [CAFILE]\n", argv[0]);
        return 2;
    }
    echo_url url;
    if (echo_parse_url(argv[1], &url) != 0) return 2;
    char* end;
    double const secs = std::strtod(argv[2], &end);
    if (*argv[2] == '\0' || *end != '\0' || !(secs > 0.0) || secs > 86400.0) {
        std::fprintf(stderr, "SECONDS must be > 0 (got \"%s\")\n", argv[2]);
        return 2;
    }
    char const* cafile = argc == 4 ? argv[3] : nullptr;
    try {
        net::io_context ioc{1};
        tcp::resolver resolver{ioc};
        auto const results = resolver.resolve(url.host, url.port);
        if (!url.tls) {
            websocket::stream<tcp::socket> ws{ioc};
            net::connect(ws.next_layer(), results);
            ws.next_layer().set_option(tcp::no_delay(true));
            run(ws, url, secs);
        } else {
            ssl::context ctx{ssl::context::tls_client};
            ctx.set_verify_mode(ssl::verify_peer);
            if (cafile)
                ctx.load_verify_file(cafile);
            else
                ctx.set_default_verify_paths();
            websocket::stream<ssl::stream<tcp::socket>> ws{ioc, ctx};
            auto& tls = ws.next_layer();
            unsigned char ip[16];
            bool const literal = inet_pton(AF_INET, url.host, ip) == 1 ||
                                 inet_pton(AF_INET6, url.host, ip) == 1;
            if (!literal && !SSL_set_tlsext_host_name(tls.native_handle(), url.host))
                throw std::runtime_error("cannot set SNI");
            tls.set_verify_callback(ssl::host_name_verification(url.host));
            net::connect(beast::get_lowest_layer(ws), results);
            beast::get_lowest_layer(ws).set_option(tcp::no_delay(true));
            tls.handshake(ssl::stream_base::client);
            std::cerr << "tls: " << SSL_get_version(tls.native_handle()) << " "
                      << SSL_get_cipher_name(tls.native_handle()) << "\n";
            run(ws, url, secs);
        }
    } catch (std::exception const& e) {
        std::cerr << "beast_reader: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
