#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers at 127.0.0.1:5432 with trust auth and a database `test`.
# Uses the one that answers; otherwise installs Debian's postgresql and starts its cluster.
set -euo pipefail

answers() { .venv/bin/python - <<'PY'
import socket, sys
try:
    socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
except OSError:
    sys.exit(1)
PY
}

if ! answers; then
    if ! dpkg-query -W -f='${Status}' postgresql 2>/dev/null | grep -q "install ok installed"; then
        echo "postgres: installing Debian's postgresql"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    fi
    version=$(ls /etc/postgresql | sort -n | tail -1)
    conf=/etc/postgresql/$version/main
    # Trust for loopback connections: this cluster exists for the tests only.
    if ! grep -q "ketnoi-tests" "$conf/pg_hba.conf"; then
        sed -i '1i host all all 127.0.0.1/32 trust # ketnoi-tests\nhost all all ::1/128 trust # ketnoi-tests' "$conf/pg_hba.conf"
    fi
    ctl() { pg_ctlcluster --skip-systemctl-redirect "$version" main "$1"; }
    if ctl status >/dev/null 2>&1; then
        echo "postgres: reloading cluster $version/main"
        ctl reload
    else
        echo "postgres: starting cluster $version/main"
        ctl start
    fi
    for _ in $(seq 1 60); do answers && break; sleep 0.5; done
    answers || { echo "postgres: the server did not come up at 127.0.0.1:5432" >&2; exit 1; }
fi

if ! command -v psql >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postgresql-client >/dev/null
fi
if ! psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname='test'" 2>/dev/null | grep -q 1; then
    psql -h 127.0.0.1 -U postgres -c "create database test" >/dev/null
fi
