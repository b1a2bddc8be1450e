// Package all links every output into the binary: importing it runs each output package's
// registration.
package all

import (
	_ "github.com/saker-dev/saker/outputs/alertmanager"  // alertmanager output
	_ "github.com/saker-dev/saker/outputs/aws"           // awssqs, awssns, awslambda outputs
	_ "github.com/saker-dev/saker/outputs/azure"         // azureeventhub output (Event Hubs Kafka endpoint)
	_ "github.com/saker-dev/saker/outputs/cliq"          // cliq output (Zoho Cliq)
	_ "github.com/saker-dev/saker/outputs/cloudevents"   // cloudevents output (HTTP binary mode)
	_ "github.com/saker-dev/saker/outputs/datadog"       // datadog and datadoglogs outputs
	_ "github.com/saker-dev/saker/outputs/discord"       // discord output
	_ "github.com/saker-dev/saker/outputs/dynatrace"     // dynatrace output
	_ "github.com/saker-dev/saker/outputs/elasticsearch" // elasticsearch output
	_ "github.com/saker-dev/saker/outputs/file"          // file output
	_ "github.com/saker-dev/saker/outputs/fission"       // fission output
	_ "github.com/saker-dev/saker/outputs/gcp"           // gcppubsub, gcpstorage, gcpcloudfunctions, gcpchronicle outputs (Google Cloud)
	_ "github.com/saker-dev/saker/outputs/gcpcloudrun"   // gcpcloudrun output (Google Cloud Run)
	_ "github.com/saker-dev/saker/outputs/googlechat"    // googlechat output
	_ "github.com/saker-dev/saker/outputs/gotify"        // gotify output
	_ "github.com/saker-dev/saker/outputs/grafana"       // grafana output (annotations)
	_ "github.com/saker-dev/saker/outputs/grafanaoncall" // grafanaoncall output
	_ "github.com/saker-dev/saker/outputs/influxdb"      // influxdb output
	_ "github.com/saker-dev/saker/outputs/kafka"         // kafka output
	_ "github.com/saker-dev/saker/outputs/kafkarest"     // kafkarest output (Confluent REST Proxy)
	_ "github.com/saker-dev/saker/outputs/kubeless"      // kubeless output (deprecated upstream)
	_ "github.com/saker-dev/saker/outputs/logstash"      // logstash output
	_ "github.com/saker-dev/saker/outputs/loki"          // loki output
	_ "github.com/saker-dev/saker/outputs/mattermost"    // mattermost output (Slack-compatible)
	_ "github.com/saker-dev/saker/outputs/mqtt"          // mqtt output
	_ "github.com/saker-dev/saker/outputs/n8n"           // n8n output
	_ "github.com/saker-dev/saker/outputs/nats"          // nats output
	_ "github.com/saker-dev/saker/outputs/nodered"       // nodered output (Node-RED)
	_ "github.com/saker-dev/saker/outputs/openfaas"      // openfaas output
	_ "github.com/saker-dev/saker/outputs/openobserve"   // openobserve output
	_ "github.com/saker-dev/saker/outputs/opsgenie"      // opsgenie output
	_ "github.com/saker-dev/saker/outputs/otlp"          // otlptraces, otlplogs, otlpmetrics outputs (OpenTelemetry)
	_ "github.com/saker-dev/saker/outputs/pagerduty"     // pagerduty output
	_ "github.com/saker-dev/saker/outputs/policyreport"  // policyreport output (Kubernetes PolicyReports)
	_ "github.com/saker-dev/saker/outputs/quickwit"      // quickwit output
	_ "github.com/saker-dev/saker/outputs/rabbitmq"      // rabbitmq output
	_ "github.com/saker-dev/saker/outputs/redis"         // redis output
	_ "github.com/saker-dev/saker/outputs/rocketchat"    // rocketchat output (Slack-compatible)
	_ "github.com/saker-dev/saker/outputs/slack"         // slack output
	_ "github.com/saker-dev/saker/outputs/smtp"          // smtp output
	_ "github.com/saker-dev/saker/outputs/splunk"        // splunk output
	_ "github.com/saker-dev/saker/outputs/spyderbat"     // spyderbat output
	_ "github.com/saker-dev/saker/outputs/stdout"        // stdout output
	_ "github.com/saker-dev/saker/outputs/sumologic"     // sumologic output
	_ "github.com/saker-dev/saker/outputs/syslog"        // syslog output
	_ "github.com/saker-dev/saker/outputs/talon"         // talon output (Falco Talon)
	_ "github.com/saker-dev/saker/outputs/teams"         // teams output
	_ "github.com/saker-dev/saker/outputs/tekton"        // tekton output (Tekton Triggers)
	_ "github.com/saker-dev/saker/outputs/telegram"      // telegram output
	_ "github.com/saker-dev/saker/outputs/timescaledb"   // timescaledb output (PostgreSQL rows)
	_ "github.com/saker-dev/saker/outputs/wavefront"     // wavefront output
	_ "github.com/saker-dev/saker/outputs/webex"         // webex output
	_ "github.com/saker-dev/saker/outputs/webhook"       // webhook output
	_ "github.com/saker-dev/saker/outputs/webui"         // webui output (Falcosidekick UI)
	_ "github.com/saker-dev/saker/outputs/zincsearch"    // zincsearch output
)
