# Shared by the gateway benchmarks (gateway_bench.sh, gateway_rate_bench.sh); sourced, with
# `die` defined by the caller.

# bench_serve_config DIR UP_PORT: writes DIR/serve.toml, a `landlord serve` whose gateway sends
# model `m` to the upstream on UP_PORT (auth, limits far above the load, budget holds and
# metering on), its SQLite store in DIR/data, a small sim fleet that sells nothing of note.
bench_serve_config() {
  local dir=$1 up=$2
  mkdir -p "$dir/data"
  printf 'submit_s,gpus,duration_s\n0,8,3024000\n' >"$dir/owner.csv"
  cat >"$dir/serve.toml" <<EOT
[server]
listen = "127.0.0.1:0"
data_dir = "$dir/data"
max_connections = 4096
tick_ms = 100
[clock]
speed = 20
[fleet]
trace = "csv:$dir/owner.csv"
nodes = 4
gpus_per_node = 8
history_h = 360
[policy]
name = "spot-all"
[gateway]
rpm = 100000000
tpm = 10000000000
[[gateway.upstreams]]
model = "m"
url = "http://127.0.0.1:$up"
EOT
}

# bench_tenant_key URL ADMIN_KEY: a tenant credited $1,000,000 on the server at URL; prints its key.
bench_tenant_key() {
  local url=$1 admin_key=$2 tenant key
  admin() {
    curl -fsS -X POST "$url/admin/$1" -H "Authorization: Bearer $admin_key" -H 'Content-Type: application/json' \
      -d "$2" || die "POST /admin/$1 failed"
  }
  field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
  tenant=$(admin tenants '{"name":"bench"}' | field id)
  [[ -n $tenant ]] || die "no tenant id from POST /admin/tenants"
  key=$(admin keys "{\"tenant_id\":\"$tenant\"}" | field key)
  [[ -n $key ]] || die "no key from POST /admin/keys"
  admin credits "{\"tenant_id\":\"$tenant\",\"amount\":\"1000000.00\"}" >/dev/null
  echo "$key"
}
