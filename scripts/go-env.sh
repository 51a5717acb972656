# Sourced by the scripts in this directory: puts a Go toolchain new enough for
# go.mod on PATH. It uses the go on PATH or in /usr/local/go when it can switch
# toolchains itself (Go >= 1.21 fetches the one go.mod names through the module
# proxy); otherwise it downloads the toolchain zip from the module proxy.
want=$(sed -n 's/^go \([0-9.]*\)$/\1/p' go.mod)
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"
go_ok() {
	command -v go >/dev/null 2>&1 || return 1
	v=$(go env GOVERSION 2>/dev/null | sed 's/^go//')
	major=${v%%.*}; rest=${v#*.}; minor=${rest%%.*}
	[ "${major:-0}" -gt 1 ] || [ "${minor:-0}" -ge 21 ]
}
if ! go_ok; then
	dir="${XDG_CACHE_HOME:-$HOME/.cache}/rampart-go/go$want"
	if [ ! -x "$dir/bin/go" ]; then
		echo "fetching Go $want from the module proxy" >&2
		if ! command -v curl >/dev/null || ! command -v unzip >/dev/null; then
			if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
				apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl ca-certificates unzip >/dev/null
			else
				echo "error: need curl and unzip to fetch Go (or install Go $want yourself)" >&2
				exit 1
			fi
		fi
		arch=$(uname -m); case "$arch" in x86_64) arch=amd64;; aarch64) arch=arm64;; esac
		tmp=$(mktemp -d)
		curl -fsSL -o "$tmp/go.zip" "${GOPROXY_URL:-https://proxy.golang.org}/golang.org/toolchain/@v/v0.0.1-go$want.linux-$arch.zip"
		mkdir -p "$dir"
		(cd "$tmp" && unzip -q go.zip)
		cp -a "$tmp"/golang.org/toolchain@*/. "$dir"/
		chmod -R u+x "$dir/bin" "$dir/pkg/tool"
		rm -rf "$tmp"
	fi
	export PATH="$dir/bin:$PATH"
fi
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
