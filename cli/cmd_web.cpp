// kforge serve: the kernel library in a browser, read live while a search writes it.
// kforge report: the same pages written as static files.
#include <memory>

#include "cli/cli.hpp"
#include "web/web.hpp"

namespace kforge::cli {
namespace {

struct WebArgs {
  std::string db_path, host = "127.0.0.1", out, run_id;
  int port = 8080;
};

int run_serve(const WebArgs& a) {
  auto site = web::Site::open(a.db_path);
  if (!site) return report(site.error());
  auto s = web::serve(*site, a.host, a.port, [&](int port) {
    // The first line says where: a test started with --port 0 reads the port from it.
    fmt::print("kforge serve: {} read-only on http://{}:{}/\n", a.db_path, a.host, port);
    std::fflush(stdout);
  });
  return s ? kExitOk : report(s.error());
}

int run_report(const WebArgs& a) {
  auto site = web::Site::open(a.db_path, a.run_id);
  if (!site) return report(site.error());
  auto pages = web::write_report(*site, a.out);
  if (!pages) return report(pages.error());
  fmt::print("kforge report: {} pages in {}/ (open {}/index.html)\n", *pages, a.out, a.out);
  return kExitOk;
}

}  // namespace

void add_web_commands(CLI::App& app, Context& context) {
  auto args = std::make_shared<WebArgs>();
  auto* serve = app.add_subcommand(
      "serve", "Browse the kernel library over HTTP (read-only): runs, tasks, kernels, devices, the best table");
  add_db_option(*serve, args->db_path);
  serve->add_option("--port", args->port, "TCP port (0: any free one; default 8080)")->check(CLI::Range(0, 65535));
  serve->add_option("--host", args->host, "Address to bind (default 127.0.0.1: this machine only)");
  serve->callback([&context, args] { context.run = [args] { return run_serve(*args); }; });

  auto* report_command = app.add_subcommand("report", "Write the pages of kforge serve as static files");
  add_db_option(*report_command, args->db_path);
  report_command->add_option("--run", args->run_id, "Only this run's pages (default: every run)");
  report_command->add_option("--out", args->out, "Directory to write (created if missing)")->required();
  report_command->callback([&context, args] { context.run = [args] { return run_report(*args); }; });
}

}  // namespace kforge::cli
