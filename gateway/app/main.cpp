// gate46d: parses argv, loads the configuration, runs the daemon. Everything else lives in
// the component libraries.
#include <cstdio>
#include <exception>
#include <string>

#include <CLI/CLI.hpp>

#include "gate46/common/config.hpp"
#include "gate46/dns/dns_component.hpp"
#include "gate46/gateway/daemon.hpp"
#include "gate46/gateway/socks_server.hpp"
#include "gate46/gateway/transparent_relay.hpp"
#include "gate46/tproxy/capture.hpp"

int main(int argc, char** argv) {
  CLI::App app{"gate46d: the RFC 3089 IPv6/IPv4 gateway daemon (DNS proxy, capture, relay, SOCKS5)"};
  app.set_version_flag("--version", std::string{"gate46d "} + GATE46_VERSION);
  std::string config_path = "/etc/gate46/gate46.toml";
  std::string components;
  bool check_only = false;
  app.add_option("-c,--config", config_path, "configuration file")->capture_default_str();
  app.add_option("--components", components,
                 "comma-separated components to run instead of daemon.components "
                 "(dns, socks, relay, firewall)");
  std::string control_socket;
  app.add_option("--control-socket", control_socket,
                 "control socket path instead of control.socket (one per daemon when components run as "
                 "separate processes)");
  app.add_flag("--check-config", check_only, "validate the configuration file and exit");
  app.footer(
      "Started as root, gate46d opens its control socket, then runs as daemon.user keeping only "
      "CAP_NET_ADMIN and CAP_NET_BIND_SERVICE. SIGHUP reloads the configuration, SIGTERM drains and stops.");
  CLI11_PARSE(app, argc, argv);

  gate46::gateway::daemon_options options{config_path, std::nullopt, std::nullopt, /*drop_privileges=*/true};
  if (!control_socket.empty()) {
    options.control_socket = control_socket;
  }
  try {
    if (!components.empty()) {
      options.components = gate46::gateway::parse_component_list(components);
    }
    if (check_only) {
      (void)gate46::load_config(options.config_path);
      std::printf("%s: configuration is valid\n", config_path.c_str());
      return 0;
    }
    // Each component's issue registers its factory here.
    gate46::gateway::component_registry registry;
    registry.add("dns", [](const gate46::component_context& context, gate46::gateway::daemon_services& services) {
      return gate46::dns::make_dns_component(context, *services.resolver, *services.store);
    });
    registry.add("socks", [](const gate46::component_context& context, gate46::gateway::daemon_services& services) {
      return gate46::gateway::make_socks_component(context, *services.resolver, *services.store, *services.flows);
    });
    registry.add("relay", [](const gate46::component_context& context, gate46::gateway::daemon_services& services) {
      return gate46::gateway::make_relay_component(context, *services.resolver, *services.store, *services.flows);
    });
    registry.add("firewall", [](const gate46::component_context& context, gate46::gateway::daemon_services&) {
      return gate46::tproxy::make_firewall_component(context);
    });
    gate46::gateway::daemon daemon{std::move(options), registry};
    return daemon.run();
  } catch (const gate46::config_error& e) {
    std::fprintf(stderr, "gate46d: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gate46d: %s\n", e.what());
    return 1;
  }
}
