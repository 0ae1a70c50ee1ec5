#!/usr/bin/env bash
# Installs the mcp-fleet manager as a systemd service on this host (manager --daemon: workers over mutual TLS,
# MCP over HTTPS at /mcp), from a built checkout of mcp-fleet (npm ci has been run). Run it again to update the
# manager or its settings: it is idempotent, and the fleet it holds is kept.
#
#   scripts/install-manager.sh [--fleet NAME | --fleet-dir DIR] [--port N] [--host ADDRESS] [--no-mdns]
#                              [--allowed-origins URL,...]
#   scripts/install-manager.sh --uninstall [--purge]
#
# Options:
#   --fleet NAME              with no fleet on this host yet: create one of this name (mcp-fleet certs init;
#                             default: default) in /etc/mcp-fleet/fleet
#   --fleet-dir DIR           instead: an existing fleet directory (certs init's: ca.pem, ca-key.pem, manager.pem,
#                             manager-key.pem, and whatever was issued since), copied into /etc/mcp-fleet/fleet
#   --port N                  the port workers and MCP clients reach (default 7443)
#   --host ADDRESS            the address to listen on (default: all)
#   --no-mdns                 neither announce the manager nor watch for workers on mDNS
#   --allowed-origins URLS    browser origins allowed to call /mcp (default: none)
#   --root DIR                install under DIR instead of / (packaging, tests); systemd is left alone and no
#                             system user is created
#   --uninstall               stop and remove the service, the manager, its settings, its state and its system
#                             user; the fleet directory is kept (made root's), since it holds the CA
#   --purge                   with --uninstall: remove the fleet directory too, CA key included. Every certificate
#                             the CA signed can no longer be renewed or revoked
set -euo pipefail

SRC="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/lib/install-common.sh
. "$SRC/scripts/lib/install-common.sh"
UNIT=mcp-fleet-manager.service
FLEET_DIR=$CONF_DIR/fleet
ENV_FILE=$CONF_DIR/manager.env
# The unit's StateDirectory=mcp-fleet-manager (the private/ one only if it ever ran with DynamicUser).
STATE_DIRS=(/var/lib/mcp-fleet-manager /var/lib/private/mcp-fleet-manager)
SVC_USER=mcp-fleet-manager
SVC_GECOS="mcp-fleet manager"
# The CLI for operators on this host, its certs and token commands pointed at this fleet.
CLI=/usr/local/bin/mcp-fleet
CLI_MARK="# Written by mcp-fleet's install-manager.sh"
# The files the manager itself rewrites (join requests, enrolled and renewed certificates, revocations on renewal).
SHARED_FILES=(tokens.json inventory.json crl.pem)
KEYS=(ca-key.pem manager-key.pem)

ROOT=/ FLEET= FROM= PORT= HOST= NO_MDNS=0 ORIGINS= UNINSTALL=0 PURGE=0 SETTINGS=0
die() { echo "install-manager: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --fleet) FLEET=${2:?}; shift 2 ;;
    --fleet-dir) FROM=${2:?}; shift 2 ;;
    --port) PORT=${2:?}; SETTINGS=1; shift 2 ;;
    --host) HOST=${2:?}; SETTINGS=1; shift 2 ;;
    --no-mdns) NO_MDNS=1; SETTINGS=1; shift ;;
    --allowed-origins) ORIGINS=${2:?}; SETTINGS=1; shift 2 ;;
    --root) ROOT=${2:?}; shift 2 ;;
    --uninstall) UNINSTALL=1; shift ;;
    --purge) PURGE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done

resolve_root
[ "$PURGE" -eq 0 ] || [ "$UNINSTALL" -eq 1 ] || die "--purge goes with --uninstall"
# Only the user this script created (known by its comment), never one of the same name made by someone else.
own_user() { [ "$ROOT" = / ] && [ "$(getent passwd "$SVC_USER" | cut -d: -f5)" = "$SVC_GECOS" ]; }
own_cli() { [ -f "$R$CLI" ] && grep -qxF "$CLI_MARK" "$R$CLI"; }

if [ "$UNINSTALL" -eq 1 ]; then
  if [ "$SYSTEMD" -eq 1 ]; then systemctl disable --now "$UNIT" 2>/dev/null || true; fi
  rm -f "$R$UNIT_DIR/$UNIT" "$R$ENV_FILE"
  for d in "${STATE_DIRS[@]}"; do rm -rf "$R$d"; done
  if own_cli; then rm -f "$R$CLI"; fi
  if [ "$PURGE" -eq 1 ]; then
    rm -rf "$R$FLEET_DIR"
  elif [ -d "$R$FLEET_DIR" ]; then
    # Its user is about to go: files of a uid nobody has could be handed to the next user given it.
    chown -R 0:0 "$R$FLEET_DIR"
    echo "kept the fleet (its CA and CA key) in $FLEET_DIR, now root's; --uninstall --purge removes it"
  fi
  remove_app_unless_shared "$UNIT"
  remove_conf_dir_if_empty
  if own_user; then userdel "$SVC_USER"; fi
  # A unit that failed stays listed until its failure is forgotten.
  if [ "$SYSTEMD" -eq 1 ]; then systemctl daemon-reload; systemctl reset-failed "$UNIT" 2>/dev/null || true; fi
  echo "removed the mcp-fleet manager from ${ROOT}"
  exit 0
fi

# Everything is checked before anything is installed.
[ -z "$FLEET" ] || [ -z "$FROM" ] || die "--fleet creates a fleet, --fleet-dir brings one: give one of them"
# One line each: a line break would end the value in manager.env and start another setting.
for v in "$PORT" "$HOST" "$ORIGINS"; do case "$v" in *$'\n'*|*$'\r'*) die "--port, --host and --allowed-origins must be one line" ;; esac; done
if [ -n "$PORT" ]; then [[ "$PORT" =~ ^[0-9]{1,5}$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || die "--port $PORT: a port is 1 to 65535"; fi
need_node
cli() { "$NODE" "$SRC/dist/cli/main.js" "$@"; }
installed=0
[ ! -f "$R$FLEET_DIR/ca.pem" ] || installed=1
if [ -n "$FROM" ]; then
  for f in ca.pem ca-key.pem manager.pem manager-key.pem; do [ -r "$FROM/$f" ] || die "--fleet-dir: cannot read $FROM/$f"; done
  # The manager's own check, so what is installed is what it accepts.
  cli certs check --role manager --ca "$FROM/ca.pem" --cert "$FROM/manager.pem" --key "$FROM/manager-key.pem" >/dev/null \
    || die "--fleet-dir: $FROM/manager.pem and manager-key.pem are not a manager identity of $FROM/ca.pem (see above)"
  if [ "$installed" -eq 1 ] && ! cmp -s "$FROM/ca.pem" "$R$FLEET_DIR/ca.pem"; then
    die "another fleet is installed in $FLEET_DIR: --uninstall --purge first to replace it (its certificates stop working)"
  fi
elif [ "$installed" -eq 1 ]; then
  [ -z "$FLEET" ] || [ "$(cli certs check --role manager --ca "$R$FLEET_DIR/ca.pem" --cert "$R$FLEET_DIR/manager.pem" --key "$R$FLEET_DIR/manager-key.pem" | sed -n 's/.* of fleet "\([^"]*\)".*/\1/p')" = "$FLEET" ] \
    || die "--fleet $FLEET: this host already holds another fleet in $FLEET_DIR"
fi

umask 022
install_app

# The fleet: a new one, one brought along, or the one installed before (kept as it is: it holds live tokens,
# join requests and the inventory). Made in a directory of its own and renamed into place, never half there.
install -d -m 0755 "$R$CONF_DIR"
if [ "$installed" -eq 1 ]; then
  echo "kept the fleet installed in $FLEET_DIR"
else
  rm -rf "$R$FLEET_DIR.new"
  if [ -n "$FROM" ]; then
    # Modes are kept, owners are not: the copy is root's, then the service's where it must write.
    cp -R --preserve=mode,timestamps "$FROM" "$R$FLEET_DIR.new"
    rm -f "$R$FLEET_DIR.new"/*.lock "$R$FLEET_DIR.new"/*.tmp
  else
    cli certs init --dir "$R$FLEET_DIR.new" --fleet "${FLEET:-default}" >/dev/null
  fi
  [ "$(id -u)" -ne 0 ] || chown -R 0:0 "$R$FLEET_DIR.new"
  mv "$R$FLEET_DIR.new" "$R$FLEET_DIR"
fi

# Ownership: the service writes the directory (the shared files and their lock files); the private keys stay
# root's, handed to the service by systemd (LoadCredential=); what operators issue here stays root's.
if [ "$ROOT" = / ]; then
  getent passwd "$SVC_USER" >/dev/null || useradd --system --user-group --no-create-home --home-dir / \
    --shell /usr/sbin/nologin --comment "$SVC_GECOS" "$SVC_USER"
  owner="$SVC_USER:$SVC_USER"
else
  echo "not creating the system user $SVC_USER under $ROOT: create it on the host (useradd --system $SVC_USER) and chown $FLEET_DIR to it"
  owner=0:0
fi
# Only what must change, so a manager running through a reinstall never finds its directory taken away.
chmod 0750 "$R$FLEET_DIR"
for f in "${KEYS[@]}"; do chmod 0600 "$R$FLEET_DIR/$f"; done
if [ "$(id -u)" -eq 0 ]; then
  chown "$owner" "$R$FLEET_DIR"
  for f in "${SHARED_FILES[@]}"; do [ ! -f "$R$FLEET_DIR/$f" ] || chown "$owner" "$R$FLEET_DIR/$f"; done
  for f in "${KEYS[@]}"; do chown 0:0 "$R$FLEET_DIR/$f"; done
fi

# Settings: rewritten when given, otherwise kept as the operator left them.
if [ "$SETTINGS" -eq 1 ] || [ ! -f "$R$ENV_FILE" ]; then
  {
    echo "# mcp-fleet manager settings: one MCP_FLEET_<FLAG>=\"value\" per line (see mcp-fleet manager --help)."
    echo "# The fleet's files, the keys and the state file are the unit's (systemctl cat $UNIT)."
    if [ -n "$PORT" ]; then echo "MCP_FLEET_PORT=$(env_quote "$PORT")"; else echo "# MCP_FLEET_PORT=\"7443\""; fi
    if [ -n "$HOST" ]; then echo "MCP_FLEET_HOST=$(env_quote "$HOST")"; else echo "# MCP_FLEET_HOST=\"10.0.0.5\"   (unset: all addresses)"; fi
    if [ "$NO_MDNS" -eq 1 ]; then echo 'MCP_FLEET_NO_MDNS="1"'; fi
    if [ -n "$ORIGINS" ]; then echo "MCP_FLEET_ALLOWED_ORIGINS=$(env_quote "$ORIGINS")"; else echo "# MCP_FLEET_ALLOWED_ORIGINS=\"https://console.example\""; fi
    echo "# MCP_FLEET_CERT_LIFETIME=\"7d\"   (certificates issued to joining and renewing hosts)"
    echo "# MCP_FLEET_METRICS_LISTEN=\"127.0.0.1:9464\"   (Prometheus metrics, where the manager has --metrics-listen)"
  } > "$R$ENV_FILE.new"
  chmod 0644 "$R$ENV_FILE.new"
  mv "$R$ENV_FILE.new" "$R$ENV_FILE"
fi

# The command line for operators on this host (sudo mcp-fleet certs issue --role operator alice), unless another
# mcp-fleet is installed there.
if [ ! -e "$R$CLI" ] || own_cli; then
  install -d -m 0755 "$R$(dirname "$CLI")"
  cat > "$R$CLI.new" <<CLI
#!/bin/sh
$CLI_MARK
# The installed mcp-fleet; its certs and token commands work on this host's fleet unless --dir says otherwise.
MCP_FLEET_DIR="\${MCP_FLEET_DIR:-$FLEET_DIR}" exec $NODE $APP_DIR/dist/cli/main.js "\$@"
CLI
  chmod 0755 "$R$CLI.new"
  mv "$R$CLI.new" "$R$CLI"
else
  echo "left $CLI alone (not this installer's): pass --dir $FLEET_DIR to its certs and token commands"
fi

install_unit "$UNIT"

if [ "$SYSTEMD" -eq 1 ]; then
  systemctl daemon-reload
  systemctl enable "$UNIT" >/dev/null
  systemctl restart "$UNIT"
  echo "installed and started $UNIT; follow it with: journalctl -u $UNIT -f"
else
  echo "installed under ${ROOT}; systemd is not managing this root, so $UNIT was not enabled or started"
fi
