# What install-worker.sh and install-manager.sh share: sourced by both, never run by itself. Each function dies
# through the caller's die(), so its messages carry the caller's name.

APP_DIR=/opt/mcp-fleet
CONF_DIR=/etc/mcp-fleet
UNIT_DIR=/etc/systemd/system
# Both units run the one build in $APP_DIR: removing one of them keeps it while the other's unit is installed.
UNITS_SHARING_APP=(mcp-fleet-worker.service mcp-fleet-manager.service)

# Makes ROOT absolute, sets R (ROOT without its trailing /) and SYSTEMD (1: a real install on a host booted with
# systemd, the only case that touches the service manager), and refuses a real install by anyone but root.
resolve_root() {
  [ "$ROOT" = / ] || ROOT="$(cd "$ROOT" && pwd)"
  R="${ROOT%/}"
  if [ "$ROOT" = / ] && [ -d /run/systemd/system ]; then SYSTEMD=1; else SYSTEMD=0; fi
  [ "$(id -u)" -eq 0 ] || [ "$ROOT" != / ] || die "run as root (it writes $APP_DIR, $CONF_DIR and $UNIT_DIR)"
}

# Sets NODE to a node of version 20 or newer, and checks that $SRC holds a built checkout.
need_node() {
  [ -f "$SRC/dist/cli/main.js" ] || die "no build in $SRC/dist: run npm ci in $SRC first"
  NODE="$(command -v node)" || die "node is not installed (Node.js 20 or newer is needed)"
  local major
  major="$("$NODE" -p 'process.versions.node.split(".")[0]')"
  [ "$major" -ge 20 ] || die "node $("$NODE" --version) is too old: Node.js 20 or newer is needed"
}

# Installs the build and its production dependencies from $SRC into $R$APP_DIR, swapped in whole. npm's cache and
# logs go to a work directory too, so nothing is left in root's home; no network is needed.
install_app() {
  local work stage
  work="$(mktemp -d "${TMPDIR:-/tmp}/mcp-fleet-install.XXXXXX")"
  # shellcheck disable=SC2064 # the directory is known now, and must be removed whatever happens later
  trap "rm -rf '$work'" EXIT
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
}

# Removes $R$APP_DIR unless another unit that runs it is still installed (all but $1 are looked for).
remove_app_unless_shared() {
  local u
  for u in "${UNITS_SHARING_APP[@]}"; do
    [ "$u" = "$1" ] || [ ! -f "$R$UNIT_DIR/$u" ] || { echo "kept $APP_DIR: $u still runs it"; return 0; }
  done
  rm -rf "$R$APP_DIR"
}

# Removes $R$CONF_DIR once nothing is left in it (the other service's files keep it).
remove_conf_dir_if_empty() {
  [ ! -d "$R$CONF_DIR" ] || rmdir "$R$CONF_DIR" 2>/dev/null || true
}

# A value double-quoted with \ " ` $ escaped, which systemd's EnvironmentFile= and a POSIX shell both read back as
# the value given.
env_quote() { printf '"%s"' "$(printf '%s' "$1" | sed -e 's/[\\"`$]/\\&/g')"; }

# Installs unit file $1 from $SRC/systemd into $R$UNIT_DIR, its ExecStart pointing at this node and this install.
install_unit() {
  install -d -m 0755 "$R$UNIT_DIR"
  sed -e "s|^ExecStart=/usr/bin/node /opt/mcp-fleet/|ExecStart=$NODE $APP_DIR/|" "$SRC/systemd/$1" > "$R$UNIT_DIR/$1.new"
  chmod 0644 "$R$UNIT_DIR/$1.new"
  mv "$R$UNIT_DIR/$1.new" "$R$UNIT_DIR/$1"
}
