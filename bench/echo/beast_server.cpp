// beast_server.cpp — the echo server of the round-trip benchmark.
//
//   beast_server PORT [CERT KEY]
//
// A Boost.Beast WebSocket echo server shaped like Beast's documented
// examples (example/websocket/server/async and async-ssl): an acceptor that
// launches one session per connection; a session accepts the upgrade, then
// loops async_read -> async_write of the same buffer with the same opcode.
// Tuned for speed the way a careful Beast user would: one thread and an
// io_context told so (no strands), TCP_NODELAY, no permessage-deflate,
// auto-fragmentation off (each echo is one frame, written straight from the
// read buffer), a 64 MiB read limit, no timeouts on the benchmark path.
//
// Listens on 127.0.0.1 only; with CERT and KEY it speaks TLS (wss://).
// Prints "LISTENING <port>" on stdout once accepting (PORT 0: ephemeral).
// Runs until killed.

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;

namespace {

constexpr std::size_t kReadLimit = 64u * 1024u * 1024u;

bool quiet_error(beast::error_code const& ec) {
    // The ordinary ways a benchmark client leaves.
    return ec == websocket::error::closed || ec == net::error::eof ||
           ec == net::error::connection_reset || ec == net::error::broken_pipe ||
           ec == ssl::error::stream_truncated || ec == net::error::operation_aborted ||
           ec == net::error::not_connected;
}

void fail(beast::error_code const& ec, char const* what) {
    if (!quiet_error(ec)) std::cerr << "beast_server: " << what << ": " << ec.message() << "\n";
}

template <class Stream>
void configure(websocket::stream<Stream>& ws) {
    websocket::permessage_deflate pmd;
    pmd.server_enable = false;
    pmd.client_enable = false;
    ws.set_option(pmd);
    ws.auto_fragment(false);
    ws.read_message_max(kReadLimit);
    // No idle timeout or keep-alive pings: they would only add work.
    websocket::stream_base::timeout t{};
    t.handshake_timeout = std::chrono::seconds(30);
    t.idle_timeout = websocket::stream_base::none();
    t.keep_alive_pings = false;
    ws.set_option(t);
}

// One connection. Stream is tcp::socket or ssl::stream<tcp::socket>.
template <class Stream>
class session : public std::enable_shared_from_this<session<Stream>> {
    websocket::stream<Stream> ws_;
    beast::flat_buffer buffer_;

public:
    explicit session(tcp::socket&& s) : ws_(std::move(s)) {}
    session(tcp::socket&& s, ssl::context& ctx) : ws_(std::move(s), ctx) {}

    void run() {
        if constexpr (std::is_same_v<Stream, tcp::socket>) {
            on_ready(beast::error_code{});
        } else {
            ws_.next_layer().async_handshake(
                ssl::stream_base::server,
                beast::bind_front_handler(&session::on_ready, this->shared_from_this()));
        }
    }

private:
    void on_ready(beast::error_code ec) {
        if (ec) return fail(ec, "tls handshake");
        configure(ws_);
        ws_.async_accept(beast::bind_front_handler(&session::on_accept, this->shared_from_this()));
    }

    void on_accept(beast::error_code ec) {
        if (ec) return fail(ec, "accept");
        do_read();
    }

    void do_read() {
        ws_.async_read(buffer_, beast::bind_front_handler(&session::on_read, this->shared_from_this()));
    }

    void on_read(beast::error_code ec, std::size_t) {
        if (ec) return fail(ec, "read");
        ws_.text(ws_.got_text()); // same opcode as received
        ws_.async_write(buffer_.data(),
                        beast::bind_front_handler(&session::on_write, this->shared_from_this()));
    }

    void on_write(beast::error_code ec, std::size_t) {
        if (ec) return fail(ec, "write");
        buffer_.consume(buffer_.size()); // keeps the capacity
        do_read();
    }
};

class listener : public std::enable_shared_from_this<listener> {
    net::io_context& ioc_;
    ssl::context* ctx_; // null for plain ws://
    tcp::acceptor acceptor_;

public:
    listener(net::io_context& ioc, ssl::context* ctx, tcp::endpoint ep)
        : ioc_(ioc), ctx_(ctx), acceptor_(ioc) {
        acceptor_.open(ep.protocol());
        acceptor_.set_option(net::socket_base::reuse_address(true));
        acceptor_.bind(ep);
        acceptor_.listen(net::socket_base::max_listen_connections);
    }

    unsigned short port() const { return acceptor_.local_endpoint().port(); }

    void run() { do_accept(); }

private:
    void do_accept() {
        acceptor_.async_accept(ioc_, beast::bind_front_handler(&listener::on_accept,
                                                                shared_from_this()));
    }

    void on_accept(beast::error_code ec, tcp::socket socket) {
        if (ec) {
            fail(ec, "tcp accept");
        } else {
            socket.set_option(tcp::no_delay(true), ec);
            if (ctx_)
                std::make_shared<session<ssl::stream<tcp::socket>>>(std::move(socket), *ctx_)->run();
            else
                std::make_shared<session<tcp::socket>>(std::move(socket))->run();
        }
        do_accept();
    }
};

} // namespace

int main(int argc, char* argv[]) {
    if (argc != 2 && argc != 4) {
        std::cerr << "usage: beast_server PORT [CERT KEY]\n";
        return 2;
    }
    char* end = nullptr;
    long port = std::strtol(argv[1], &end, 10);
    if (*argv[1] == '\0' || *end != '\0' || port < 0 || port > 65535) {
        std::cerr << "beast_server: PORT must be 0..65535 (got \"" << argv[1] << "\")\n";
        return 2;
    }
    try {
        net::io_context ioc{1}; // single-threaded
        std::optional<ssl::context> ctx;
        if (argc == 4) {
            ctx.emplace(ssl::context::tls_server);
            ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                             ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                             ssl::context::no_tlsv1_1);
            ctx->use_certificate_chain_file(argv[2]);
            ctx->use_private_key_file(argv[3], ssl::context::pem);
        }
        auto l = std::make_shared<listener>(
            ioc, ctx ? &*ctx : nullptr,
            tcp::endpoint{net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
        l->run();
        std::printf("LISTENING %u\n", static_cast<unsigned>(l->port()));
        std::fflush(stdout);
        ioc.run();
    } catch (std::exception const& e) {
        std::cerr << "beast_server: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
