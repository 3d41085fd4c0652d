# Shared by scripts/demo.sh and bench/*.sh (sourced, not run). Set NAME (the
# message prefix) first; SAY_FD picks where say writes (default stderr).

if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	export PATH=$PATH:/usr/local/go/bin
fi

say() { echo "$NAME: $*" >&"${SAY_FD:-2}"; }
die() {
	echo "$NAME: ERROR: $*" >&2
	exit 1
}

is_root() { [[ $(id -u) -eq 0 ]]; }

# Runs a command as the user that owns a PostgreSQL cluster (PostgreSQL
# refuses to run as root).
as_pg() {
	if is_root; then
		(cd / && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
