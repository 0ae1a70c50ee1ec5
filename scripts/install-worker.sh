#!/usr/bin/env bash
# Installs the mcp-fleet worker agent as a systemd service on this host, from a built checkout of mcp-fleet
# (npm ci has been run). Run it again to update certificates, settings or the agent: it is idempotent.
#
#   scripts/install-worker.sh --join JOIN-STRING [--manager wss://host:7443 [--no-mdns]] [--labels k=v,...] [...]
#   scripts/install-worker.sh --ca CA.pem --cert ID.pem --key ID-key.pem [--manager wss://host:7443 [--no-mdns]] [--labels k=v,...]
#                             [--action FILE.json ...] [--mcp-servers FILE.json] [--allow-restart UNIT ...]
#   scripts/install-worker.sh --uninstall
#
# Options:
#   --join STRING                      join the fleet with this join string (mcp-fleet token create); - reads it
#                                      from stdin, which keeps it out of the process list. The agent makes its own
#                                      key, enrolls, and keeps its identity in /var/lib/mcp-fleet (a systemd
#                                      StateDirectory); while that identity is valid, the string is not used again
#   --ca FILE --cert FILE --key FILE   instead of --join: the fleet CA and this worker's certificate and key
#                                      (mcp-fleet certs issue ID), for fleets whose CA key is offline
#   --manager URL                      a fixed manager; without it the worker finds its manager by mDNS
#   --no-mdns                          with --manager: neither announce the worker nor look for managers on mDNS
#   --labels k=v,...                   labels reported to the manager (a join token's labels, carried in the
#                                      certificate, win over these)
#   --action FILE.json                 an action the manager may ask this host to run (repeatable); installed
#                                      root-owned into /etc/mcp-fleet/actions.d, beside those already there
#   --mcp-servers FILE.json            the MCP servers this host offers ({"mcpServers": {...}}); readable by all
#                                      local users, so it must hold no secrets
#   --allow-restart UNIT               let the agent run `systemctl restart UNIT` and nothing else (repeatable): a
#                                      polkit rule naming exactly these units, and a system user for the agent
#   --root DIR                         install under DIR instead of / (packaging, tests); systemd is left alone
#   --uninstall                        stop and remove the service, the agent, its configuration and its state
#                                      directory (an enrolled identity: joining again needs a new join string)
set -euo pipefail

SRC="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/lib/install-common.sh
. "$SRC/scripts/lib/install-common.sh"
UNIT=mcp-fleet-worker.service
# A host that joins gets the unit plus this drop-in (systemd/mcp-fleet-worker-join.conf), which swaps the three
# identity files for the join string and adds the state directory: the unit itself stays the three-files unit.
DROP_IN_DIR=$UNIT_DIR/$UNIT.d
DROP_IN=$DROP_IN_DIR/join.conf
# The unit's StateDirectory=mcp-fleet: with DynamicUser systemd keeps it under private/ and links it from here.
STATE_DIRS=(/var/lib/mcp-fleet /var/lib/private/mcp-fleet)

POLKIT_RULE=/etc/polkit-1/rules.d/50-mcp-fleet-worker.rules
# The unit's dynamic user has this name; a system user of the name, when it exists, is used instead.
AGENT_USER=mcp-fleet-worker
AGENT_GECOS="mcp-fleet worker agent"

ROOT=/ CA= CERT= KEY= JOIN= HAS_JOIN=0 MANAGER= LABELS= NO_MDNS=0 UNINSTALL=0 SETTINGS=0 MCP_SERVERS=
ACTIONS=() RESTARTS=()
die() { echo "install-worker: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --join) JOIN=${2:?}; HAS_JOIN=1; shift 2 ;;
    --ca) CA=${2:?}; shift 2 ;;
    --cert) CERT=${2:?}; shift 2 ;;
    --key) KEY=${2:?}; shift 2 ;;
    --manager) MANAGER=${2:?}; SETTINGS=1; shift 2 ;;
    --labels) LABELS=${2:?}; SETTINGS=1; shift 2 ;;
    --no-mdns) NO_MDNS=1; SETTINGS=1; shift ;;
    --action) ACTIONS+=("${2:?}"); shift 2 ;;
    --mcp-servers) MCP_SERVERS=${2:?}; shift 2 ;;
    --allow-restart) RESTARTS+=("${2:?}"); shift 2 ;;
    --root) ROOT=${2:?}; shift 2 ;;
    --uninstall) UNINSTALL=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done

resolve_root

if [ "$UNINSTALL" -eq 1 ]; then
  if [ "$SYSTEMD" -eq 1 ]; then systemctl disable --now "$UNIT" 2>/dev/null || true; fi
  rm -f "$R$UNIT_DIR/$UNIT" "$R$DROP_IN" "$R$POLKIT_RULE"
  [ ! -d "$R$DROP_IN_DIR" ] || rmdir "$R$DROP_IN_DIR" 2>/dev/null || true
  # The worker's own files only: a manager installed on this host keeps its settings, its fleet and the agent.
  rm -rf "$R$CONF_DIR/credentials" "$R$CONF_DIR/worker.env" "$R$CONF_DIR/actions.d" "$R$CONF_DIR/mcp-servers.json"
  remove_app_unless_shared "$UNIT"
  remove_conf_dir_if_empty
  for d in "${STATE_DIRS[@]}"; do rm -rf "$R$d"; done
  # Only the user this script created (known by its comment), never one of the same name made by someone else.
  if [ "$ROOT" = / ] && [ "$(getent passwd "$AGENT_USER" | cut -d: -f5)" = "$AGENT_GECOS" ]; then userdel "$AGENT_USER"; fi
  # A unit that failed stays listed until its failure is forgotten.
  if [ "$SYSTEMD" -eq 1 ]; then systemctl daemon-reload; systemctl reset-failed "$UNIT" 2>/dev/null || true; fi
  echo "removed the mcp-fleet worker from ${ROOT}"
  exit 0
fi

if [ "$HAS_JOIN" -eq 1 ]; then
  [ -z "$CA$CERT$KEY" ] || die "--join replaces --ca, --cert and --key: give either the join string or the three files"
  if [ "$JOIN" = - ]; then IFS= read -r JOIN || [ -n "$JOIN" ] || die "--join -: no join string on stdin"; fi
  # Leading and trailing blanks come with copy-paste; the agent's parser ignores them too.
  JOIN="${JOIN#"${JOIN%%[![:space:]]*}"}"
  JOIN="${JOIN%"${JOIN##*[![:space:]]}"}"
else
  [ -n "$CA" ] && [ -n "$CERT" ] && [ -n "$KEY" ] || { usage >&2; die "--join, or --ca, --cert and --key, are required"; }
fi
# One line each: a line break would end the value in worker.env and start another setting.
[ "$NO_MDNS" -eq 0 ] || [ -n "$MANAGER" ] || die "--no-mdns needs --manager: without mDNS the worker has no other way to find its manager"
for v in "$MANAGER" "$LABELS"; do case "$v" in *$'\n'*|*$'\r'*) die "--manager and --labels must be one line" ;; esac; done
[ "$HAS_JOIN" -eq 1 ] || for f in "$CA" "$CERT" "$KEY"; do [ -r "$f" ] || die "cannot read $f"; done
need_node
# Files are checked before anything is installed; the agent checks each action's fields when it loads it.
is_json() { "$NODE" -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))' "$1" 2>/dev/null; }
for f in ${ACTIONS[@]+"${ACTIONS[@]}"}; do
  case "$(basename "$f")" in *.json) ;; *) die "$f: an action file's name must end in .json (the agent reads only those)" ;; esac
  [ -r "$f" ] || die "cannot read $f"
  is_json "$f" || die "$f is not valid JSON"
done
if [ -n "$MCP_SERVERS" ]; then [ -r "$MCP_SERVERS" ] && is_json "$MCP_SERVERS" || die "$MCP_SERVERS is not a readable JSON file"; fi
# Full unit names, as systemd hands them to polkit: `systemctl restart nginx` asks about nginx.service.
units=()
for u in ${RESTARTS[@]+"${RESTARTS[@]}"}; do
  [[ "$u" =~ ^[A-Za-z0-9@:._-]{1,248}$ ]] || die "--allow-restart $u: a unit name is A-Z a-z 0-9 @ : . _ - only"
  [[ "$u" =~ \.(service|socket|target|timer|mount|path)$ ]] || u="$u.service"
  units+=("$u")
done
if [ "${#units[@]}" -gt 0 ] && [ "$ROOT" = / ] && [ ! -d /usr/share/polkit-1 ]; then
  die "--allow-restart needs polkit (apt-get install polkitd, or your distribution's polkit package)"
fi
if [ "$HAS_JOIN" -eq 1 ]; then
  # The agent's own parser judges the string, so what is installed is what the agent accepts. The string goes
  # through the environment, never the command line, which every local user can read.
  why="$(MCP_FLEET_JOIN_CHECK="$JOIN" "$NODE" --input-type=module -e '
    const { pathToFileURL } = await import("node:url");
    const { parseJoinString } = await import(pathToFileURL(process.argv[1]).href);
    const parsed = parseJoinString(process.env.MCP_FLEET_JOIN_CHECK ?? "");
    if (!parsed.ok) { console.log(parsed.error); process.exit(2); }' "$SRC/dist/protocol/join.js" 2>&1)" \
    || die "--join: ${why:-the agent could not check the join string}"
else
  # The agent checks the files belong together before anything is installed: better refused here than in a loop.
  "$NODE" "$SRC/dist/cli/main.js" certs check --ca "$CA" --cert "$CERT" --key "$KEY" >/dev/null \
    || die "the certificate files do not belong together (see above)"
fi

umask 022
# The agent: its build and production dependencies, copied from this checkout.
install_app

# Identity: root-only; systemd hands the service private copies (LoadCredential). One way or the other: the files
# of the other way are removed, so the directory always shows how this host gets its identity.
creds="$R$CONF_DIR/credentials"
install -d -m 0755 "$R$CONF_DIR"
install -d -m 0700 "$creds"
if [ "$HAS_JOIN" -eq 1 ]; then
  (umask 077 && printf '%s\n' "$JOIN" > "$creds/join.new")
  chmod 0600 "$creds/join.new"
  mv "$creds/join.new" "$creds/join"
  rm -f "$creds/ca.pem" "$creds/worker.pem" "$creds/worker-key.pem"
  if [ -f "$R/var/lib/private/mcp-fleet/worker.pem" ]; then
    echo "this host already holds an enrolled identity in /var/lib/mcp-fleet: the agent uses it while it is valid and the join string only after that (--uninstall first to join afresh)"
  fi
else
  install -m 0600 "$CA" "$creds/ca.pem"
  install -m 0600 "$CERT" "$creds/worker.pem"
  install -m 0600 "$KEY" "$creds/worker-key.pem"
  # A host that joined before and now gets its files by hand: its enrolled identity is no longer used.
  rm -f "$creds/join"
  for d in "${STATE_DIRS[@]}"; do rm -rf "$R$d"; done
fi

# Settings: rewritten when given, otherwise kept as the operator left them (quoted by env_quote).
env_file="$R$CONF_DIR/worker.env"
if [ "$SETTINGS" -eq 1 ] || [ ! -f "$env_file" ]; then
  {
    echo "# mcp-fleet worker settings: one MCP_FLEET_<FLAG>=\"value\" per line (see mcp-fleet worker --help)."
    if [ -n "$MANAGER" ]; then echo "MCP_FLEET_MANAGER=$(env_quote "$MANAGER")"; else echo "# MCP_FLEET_MANAGER=wss://manager.lan:7443   (unset: found by mDNS)"; fi
    if [ "$NO_MDNS" -eq 1 ]; then echo 'MCP_FLEET_NO_MDNS="1"'; fi
    if [ -n "$LABELS" ]; then echo "MCP_FLEET_LABELS=$(env_quote "$LABELS")"; else echo "# MCP_FLEET_LABELS=role=web,zone=a"; fi
  } > "$env_file.new"
  chmod 0644 "$env_file.new"
  mv "$env_file.new" "$env_file"
fi

# Actions and MCP servers: root-owned and writable by root alone, as the agent requires of them.
if [ "${#ACTIONS[@]}" -gt 0 ]; then
  install -d -m 0755 "$R$CONF_DIR/actions.d"
  for f in "${ACTIONS[@]}"; do install -m 0644 "$f" "$R$CONF_DIR/actions.d/$(basename "$f")"; done
fi
[ -z "$MCP_SERVERS" ] || install -m 0644 "$MCP_SERVERS" "$R$CONF_DIR/mcp-servers.json"

# A privileged action without sudo (the unit's NoNewPrivileges rules it out): polkit lets the agent's user restart
# exactly these units. The D-Bus daemon refuses a dynamic user the system bus, so the agent gets a system user of
# its dynamic user's name, which systemd then uses instead (no home, no login shell).
if [ "${#units[@]}" -gt 0 ]; then
  if [ "$ROOT" = / ]; then
    getent passwd "$AGENT_USER" >/dev/null || useradd --system --user-group --no-create-home --home-dir / \
      --shell /usr/sbin/nologin --comment "$AGENT_GECOS" "$AGENT_USER"
  else
    echo "not creating the system user $AGENT_USER under $ROOT: create it on the host (useradd --system $AGENT_USER)"
  fi
  list="$(printf '"%s", ' "${units[@]}")"
  # polkit keeps its rules directory private to itself (0700 polkitd on Debian): its mode is left alone.
  [ -d "$R$(dirname "$POLKIT_RULE")" ] || install -d -m 0755 "$R$(dirname "$POLKIT_RULE")"
  cat > "$R$POLKIT_RULE.new" <<RULE
// Written by mcp-fleet's install-worker.sh --allow-restart: the worker agent may restart these units, and may do
// nothing else that asks polkit.
polkit.addRule(function (action, subject) {
  var units = [${list%, }];
  if (subject.user == "$AGENT_USER") {
    if (action.id == "org.freedesktop.systemd1.manage-units" && action.lookup("verb") == "restart" &&
        units.indexOf(action.lookup("unit")) >= 0) return polkit.Result.YES;
    return polkit.Result.NO;
  }
});
RULE
  chmod 0644 "$R$POLKIT_RULE.new"
  mv "$R$POLKIT_RULE.new" "$R$POLKIT_RULE"
fi

# The unit, pointing at this node and this install.
install_unit "$UNIT"
if [ "$HAS_JOIN" -eq 1 ]; then
  install -d -m 0755 "$R$DROP_IN_DIR"
  install -m 0644 "$SRC/systemd/mcp-fleet-worker-join.conf" "$R$DROP_IN.new"
  mv "$R$DROP_IN.new" "$R$DROP_IN"
else
  rm -f "$R$DROP_IN"
  [ ! -d "$R$DROP_IN_DIR" ] || rmdir "$R$DROP_IN_DIR" 2>/dev/null || true
fi

if [ "$SYSTEMD" -eq 1 ]; then
  systemctl daemon-reload
  systemctl enable "$UNIT" >/dev/null
  systemctl restart "$UNIT"
  echo "installed and started $UNIT; follow it with: journalctl -u $UNIT -f"
else
  echo "installed under ${ROOT}; systemd is not managing this root, so $UNIT was not enabled or started"
fi
