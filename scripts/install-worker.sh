#!/usr/bin/env bash
# Installs the mcp-fleet worker agent as a systemd service on this host, from a built checkout of mcp-fleet
# (npm ci has been run). Run it again to update certificates, settings or the agent: it is idempotent.
#
#   scripts/install-worker.sh --ca CA.pem --cert ID.pem --key ID-key.pem [--manager wss://host:7443 [--no-mdns]] [--labels k=v,...]
#                             [--action FILE.json ...] [--mcp-servers FILE.json] [--allow-restart UNIT ...]
#   scripts/install-worker.sh --uninstall
#
# Options:
#   --ca FILE --cert FILE --key FILE   the fleet CA and this worker's certificate and key (mcp-fleet certs issue ID)
#   --manager URL                      a fixed manager; without it the worker finds its manager by mDNS
#   --no-mdns                          with --manager: neither announce the worker nor look for managers on mDNS
#   --labels k=v,...                   labels reported to the manager
#   --action FILE.json                 an action the manager may ask this host to run (repeatable); installed
#                                      root-owned into /etc/mcp-fleet/actions.d, beside those already there
#   --mcp-servers FILE.json            the MCP servers this host offers ({"mcpServers": {...}}); readable by all
#                                      local users, so it must hold no secrets
#   --allow-restart UNIT               let the agent run `systemctl restart UNIT` and nothing else (repeatable): a
#                                      polkit rule naming exactly these units, and a system user for the agent
#   --root DIR                         install under DIR instead of / (packaging, tests); systemd is left alone
#   --uninstall                        stop and remove the service, the agent and its configuration
set -euo pipefail

APP_DIR=/opt/mcp-fleet
CONF_DIR=/etc/mcp-fleet
UNIT_DIR=/etc/systemd/system
UNIT=mcp-fleet-worker.service
SRC="$(cd "$(dirname "$0")/.." && pwd)"

POLKIT_RULE=/etc/polkit-1/rules.d/50-mcp-fleet-worker.rules
# The unit's dynamic user has this name; a system user of the name, when it exists, is used instead.
AGENT_USER=mcp-fleet-worker
AGENT_GECOS="mcp-fleet worker agent"

ROOT=/ CA= CERT= KEY= MANAGER= LABELS= NO_MDNS=0 UNINSTALL=0 SETTINGS=0 MCP_SERVERS=
ACTIONS=() RESTARTS=()
die() { echo "install-worker: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
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

[ "$ROOT" = / ] || ROOT="$(cd "$ROOT" && pwd)"
R="${ROOT%/}"
# Only a real install on a host booted with systemd touches the service manager.
if [ "$ROOT" = / ] && [ -d /run/systemd/system ]; then SYSTEMD=1; else SYSTEMD=0; fi
[ "$(id -u)" -eq 0 ] || [ "$ROOT" != / ] || die "run as root (it writes $APP_DIR, $CONF_DIR and $UNIT_DIR)"

if [ "$UNINSTALL" -eq 1 ]; then
  if [ "$SYSTEMD" -eq 1 ]; then systemctl disable --now "$UNIT" 2>/dev/null || true; fi
  rm -f "$R$UNIT_DIR/$UNIT" "$R$POLKIT_RULE"
  rm -rf "$R$APP_DIR" "$R$CONF_DIR"
  # Only the user this script created (known by its comment), never one of the same name made by someone else.
  if [ "$ROOT" = / ] && [ "$(getent passwd "$AGENT_USER" | cut -d: -f5)" = "$AGENT_GECOS" ]; then userdel "$AGENT_USER"; fi
  # A unit that failed stays listed until its failure is forgotten.
  if [ "$SYSTEMD" -eq 1 ]; then systemctl daemon-reload; systemctl reset-failed "$UNIT" 2>/dev/null || true; fi
  echo "removed the mcp-fleet worker from ${ROOT}"
  exit 0
fi

[ -n "$CA" ] && [ -n "$CERT" ] && [ -n "$KEY" ] || { usage >&2; die "--ca, --cert and --key are required"; }
# One line each: a line break would end the value in worker.env and start another setting.
[ "$NO_MDNS" -eq 0 ] || [ -n "$MANAGER" ] || die "--no-mdns needs --manager: without mDNS the worker has no other way to find its manager"
for v in "$MANAGER" "$LABELS"; do case "$v" in *$'\n'*|*$'\r'*) die "--manager and --labels must be one line" ;; esac; done
for f in "$CA" "$CERT" "$KEY"; do [ -r "$f" ] || die "cannot read $f"; done
[ -f "$SRC/dist/cli/main.js" ] || die "no built agent in $SRC/dist: run npm ci in $SRC first"
NODE="$(command -v node)" || die "node is not installed (Node.js 20 or newer is needed)"
major="$("$NODE" -p 'process.versions.node.split(".")[0]')"
[ "$major" -ge 20 ] || die "node $("$NODE" --version) is too old: Node.js 20 or newer is needed"
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
# The agent checks the files belong together before anything is installed: better refused here than in a loop.
"$NODE" "$SRC/dist/cli/main.js" certs check --ca "$CA" --cert "$CERT" --key "$KEY" >/dev/null \
  || die "the certificate files do not belong together (see above)"

umask 022
# The agent: its build and production dependencies, copied from this checkout (no network needed). npm's cache and
# logs go to the work directory too, so nothing is left in root's home.
work="$(mktemp -d "${TMPDIR:-/tmp}/mcp-fleet-install.XXXXXX")"
trap 'rm -rf "$work"' EXIT
stage="$work/app"
mkdir "$stage"
# Modes and times are kept, owners are not: the files belong to whoever installs (root), never to the checkout's
# owner, who could otherwise change the code a service runs.
cp -R --preserve=mode,timestamps "$SRC/dist" "$SRC/package.json" "$SRC/package-lock.json" "$SRC/README.md" "$stage/"
cp -R --preserve=mode,timestamps "$SRC/node_modules" "$stage/"
(cd "$stage" && npm_config_cache="$work/npm-cache" npm prune --omit=dev --ignore-scripts --offline --no-audit --no-fund \
  --no-update-notifier >/dev/null 2>&1) || die "npm prune failed in $stage"
rm -f "$stage/dist/.tsbuildinfo"
mkdir -p "$R$(dirname "$APP_DIR")"
rm -rf "$R$APP_DIR.new"
mv "$stage" "$R$APP_DIR.new"
chmod 0755 "$R$APP_DIR.new"
rm -rf "$R$APP_DIR"
mv "$R$APP_DIR.new" "$R$APP_DIR"
rm -rf "$work"
trap - EXIT

# Identity: root-only; systemd hands the service private copies (LoadCredential).
install -d -m 0755 "$R$CONF_DIR"
install -d -m 0700 "$R$CONF_DIR/credentials"
install -m 0600 "$CA" "$R$CONF_DIR/credentials/ca.pem"
install -m 0600 "$CERT" "$R$CONF_DIR/credentials/worker.pem"
install -m 0600 "$KEY" "$R$CONF_DIR/credentials/worker-key.pem"

# Settings: rewritten when given, otherwise kept as the operator left them. Values are double-quoted with \ " ` $
# escaped, which systemd's EnvironmentFile= and a POSIX shell both read back as the value given.
env_quote() { printf '"%s"' "$(printf '%s' "$1" | sed -e 's/[\\"`$]/\\&/g')"; }
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
install -d -m 0755 "$R$UNIT_DIR"
sed -e "s|^ExecStart=/usr/bin/node /opt/mcp-fleet/|ExecStart=$NODE $APP_DIR/|" \
  "$SRC/systemd/$UNIT" > "$R$UNIT_DIR/$UNIT.new"
chmod 0644 "$R$UNIT_DIR/$UNIT.new"
mv "$R$UNIT_DIR/$UNIT.new" "$R$UNIT_DIR/$UNIT"

if [ "$SYSTEMD" -eq 1 ]; then
  systemctl daemon-reload
  systemctl enable "$UNIT" >/dev/null
  systemctl restart "$UNIT"
  echo "installed and started $UNIT; follow it with: journalctl -u $UNIT -f"
else
  echo "installed under ${ROOT}; systemd is not managing this root, so $UNIT was not enabled or started"
fi
