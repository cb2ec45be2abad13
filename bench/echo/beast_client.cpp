// beast_client.cpp — the Boost.Beast peer of the round-trip benchmark.
//
//   beast_client URL SIZE SECONDS [CAFILE]
//
// Shaped like Beast's documented synchronous clients
// (example/websocket/client/sync and sync-ssl): resolve, connect, (TLS
// handshake with peer and host name verification), WebSocket handshake,
// then write / read in a loop. Tuned the way a careful Beast user would:
// TCP_NODELAY, no permessage-deflate, auto-fragmentation off, a write buffer
// large enough to mask a whole message in one go, one flat_buffer reused for
// every read. Each echo's length and opcode are checked.
// Prints round trips per second as its last stdout line.

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

#include <iostream>
#include <string>
#include <vector>

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;

namespace {

struct failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

template <class Stream>
void run(websocket::stream<Stream>& ws, echo_args const& a) {
    websocket::permessage_deflate pmd;
    pmd.client_enable = false;
    ws.set_option(pmd);
    ws.auto_fragment(false);
    ws.write_buffer_bytes(a.size < 1024 * 1024 ? (a.size < 4096 ? 4096 : a.size) : 1024 * 1024);
    ws.read_message_max(ECHO_MAX_SIZE + 16);
    ws.binary(true);

    std::string host = a.url.host;
    if (host.find(':') != std::string::npos) host = "[" + host + "]";
    host += ":";
    host += a.url.port;
    ws.handshake(host, a.url.path);

    std::vector<unsigned char> msg(a.size);
    echo_fill(msg.data(), msg.size());
    beast::flat_buffer buf;
    buf.reserve(a.size + 64);

    uint64_t trips = 0;
    uint64_t const t0 = echo_now_ns();
    uint64_t const limit = static_cast<uint64_t>(a.seconds * 1e9);
    uint64_t now = t0;
    do {
        ws.write(net::buffer(msg));
        std::size_t n = ws.read(buf);
        if (n != a.size || buf.size() != a.size || ws.got_text())
            throw failure("echo " + std::to_string(trips) + ": got " + std::to_string(n) +
                          (ws.got_text() ? " text" : " binary") + " bytes, want " +
                          std::to_string(a.size) + " binary");
        buf.consume(buf.size());
        trips++;
        now = echo_now_ns();
    } while (now - t0 < limit);

    ws.close(websocket::close_code::normal);
    echo_report(trips, now - t0);
}

} // namespace

int main(int argc, char* argv[]) {
    echo_args a;
    if (echo_parse_args(argc, argv, &a) != 0) return 2;
    try {
        net::io_context ioc{1};
        tcp::resolver resolver{ioc};
        auto const results = resolver.resolve(a.url.host, a.url.port);
        if (!a.url.tls) {
            websocket::stream<tcp::socket> ws{ioc};
            net::connect(ws.next_layer(), results);
            ws.next_layer().set_option(tcp::no_delay(true));
            run(ws, a);
        } else {
            ssl::context ctx{ssl::context::tls_client};
            ctx.set_verify_mode(ssl::verify_peer);
            if (a.cafile)
                ctx.load_verify_file(a.cafile);
            else
                ctx.set_default_verify_paths();
            websocket::stream<ssl::stream<tcp::socket>> ws{ioc, ctx};
            auto& tls = ws.next_layer();
            unsigned char ip[16];
            bool const literal = inet_pton(AF_INET, a.url.host, ip) == 1 ||
                                 inet_pton(AF_INET6, a.url.host, ip) == 1;
            if (!literal && !SSL_set_tlsext_host_name(tls.native_handle(), a.url.host))
                throw failure("cannot set SNI");
            tls.set_verify_callback(ssl::host_name_verification(a.url.host));
            net::connect(beast::get_lowest_layer(ws), results);
            beast::get_lowest_layer(ws).set_option(tcp::no_delay(true));
            tls.handshake(ssl::stream_base::client);
            std::cerr << "tls: " << SSL_get_version(tls.native_handle()) << " "
                      << SSL_get_cipher_name(tls.native_handle()) << "\n";
            run(ws, a);
        }
    } catch (std::exception const& e) {
        std::cerr << "beast_client: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
