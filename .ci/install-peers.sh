#!/usr/bin/env bash
# Installs the real servers saker's integration tests talk to into $SAKER_PEERS
# (default /tmp/saker-peers). Idempotent: what is already there is kept.
set -euo pipefail
P=${SAKER_PEERS:-/tmp/saker-peers}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$P"
export GOBIN="$P" GOFLAGS=-mod=mod

missing=()
# nginx, python3 and node: the webhook receiver-matrix test (outputs/webhook).
# prometheus, promtool and kubectl: the Helm chart tests (charts/).
# rsyslogd and influxd: the syslog and influxdb outputs' read-back tests.
# chromium: the web UI's browser test (cmd/saker), driven by npm playwright-core.
# redis-server, mosquitto (with mosquitto_passwd): the redis and mqtt outputs' tests start
# their own on a free port. rabbitmq-server: the rabbitmq output's tests use the running
# broker on 127.0.0.1:5672 (guest/guest; the Debian package starts it as a service).
for cmd in nats-server prometheus-alertmanager prometheus promtool etcd kubectl wrk nginx python3 node rsyslogd influxd chromium redis-server mosquitto mosquitto_passwd rabbitmq-server; do
  command -v "$cmd" >/dev/null || [ -x "/usr/sbin/$cmd" ] || missing+=("$cmd")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-peers: apt packages for: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nats-server prometheus-alertmanager prometheus etcd-server kubectl wrk nginx python3 nodejs rsyslog influxdb chromium redis-server mosquitto rabbitmq-server >/dev/null
fi

have() { [ -x "$P/$1" ]; }
have mailpit || go install github.com/axllent/mailpit@v1.33.1
have victoria-logs || go install github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@v1.52.1
have aws-lambda-rie || go install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@v0.0.0-20261030222936-bef5c4ba774d
have staticcheck || go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
# fake-gcs-server: the gcpstorage output's read-back tests (outputs/gcp); in memory, -public-host set by the test.
have fake-gcs-server || go install github.com/fsouza/fake-gcs-server@v1.56.1
have helm || go install helm.sh/helm/v3/cmd/helm@v3.22.0
# kube-apiserver (make e2e, the chart tests' server-side dry run): built from the Go module
# proxy, about 5 minutes the first time.
if ! have kube-apiserver; then
  WRAP=${KUBE_APISERVER_MODULE:-$HERE/peers/kube-apiserver}
  if [ ! -f "$WRAP/go.mod" ]; then
    echo "install-peers: no kube-apiserver wrapper module at $WRAP (set KUBE_APISERVER_MODULE)" >&2
    exit 1
  fi
  t=$(mktemp -d)
  cp "$WRAP"/go.mod "$WRAP"/go.sum "$WRAP"/*.go "$t/"
  V=k8s.io/component-base/version
  echo "install-peers: building kube-apiserver (first run only, ~5 min)"
  (cd "$t" && go build -trimpath -ldflags "-s -w -X $V.gitVersion=v1.34.4 -X $V.gitMajor=1 -X $V.gitMinor=34" \
     -o "$P/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)
  rm -rf "$t"
fi
# OpenTelemetry Collector with only the OTLP receiver and the debug exporter: the otlp
# outputs' read-back tests (outputs/otlp). Built with the collector builder from
# peers/otelcol/manifest.yaml (pinned v0.165.0), about 10 minutes the first time.
have builder || go install go.opentelemetry.io/collector/cmd/builder@v0.165.0
if ! have otelcol-mini; then
  t=$(mktemp -d)
  sed "s#\${PEERS_DIR}#$t#" "$HERE/peers/otelcol/manifest.yaml" > "$t/manifest.yaml"
  echo "install-peers: building otelcol-mini (first run only, ~10 min)"
  mkdir -p "$t/otelcol/build" # the builder creates only the last element of output_path
  (cd "$t" && "$P/builder" --config "$t/manifest.yaml" >/dev/null)
  cp "$t/otelcol/build/otelcol-mini" "$P/otelcol-mini"
  rm -rf "$t"
fi
if ! have lambda-recorder; then
  (cd "$HERE/peers/lambda-recorder" && go build -o "$P/lambda-recorder" .)
fi
if [ ! -f "$P/fauxqs/node_modules/fauxqs/dist/cli.js" ]; then
  mkdir -p "$P/fauxqs"
  (cd "$P/fauxqs" && npm install --silent --no-audit --no-fund fauxqs@1.9.2 >/dev/null)
fi
# versitygw: an S3 gateway that checks SigV4 (posix backend in a temp dir): the awss3,
# yandexs3 and awssecuritylake outputs' read-back tests (outputs/aws).
have versitygw || go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
# kinesalite: a Kinesis emulator: the awskinesis and yandexdatastreams read-back tests.
if [ ! -f "$P/kinesalite/node_modules/kinesalite/cli.js" ]; then
  mkdir -p "$P/kinesalite"
  (cd "$P/kinesalite" && npm install --silent --no-audit --no-fund kinesalite@3.3.3 >/dev/null)
fi
# Node-RED: the nodered output's integration test (outputs/nodered).
if [ ! -f "$P/node-red/node_modules/node-red/red.js" ]; then
  mkdir -p "$P/node-red"
  (cd "$P/node-red" && npm install --silent --no-audit --no-fund node-red@4.1.8 >/dev/null)
fi
# playwright-core: the web UI's browser test (cmd/saker), with Debian's chromium.
if [ ! -f "$P/playwright/node_modules/playwright-core/package.json" ]; then
  mkdir -p "$P/playwright"
  (cd "$P/playwright" && npm install --silent --no-audit --no-fund playwright-core@1.65.1 >/dev/null)
fi
echo "install-peers: ready in $P"
