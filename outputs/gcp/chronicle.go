package gcp

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"cloud.google.com/go/auth"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
)

// Chronicle is the gcpchronicle output: the Chronicle API's logs.import (v1beta) with the
// event's Falco JSON as a raw log of gcp.chronicle.logtype (FALCO_IDS: Google's built-in Falco
// parser turns it into UDM), as falcosidekick imports it. It also takes batches (several logs
// per call) when gcp.chronicle.batch.maxevents is above 1.
type Chronicle struct {
	http  *httpout.Client
	creds *auth.Credentials
	url   string
	now   func() time.Time
}

// NewChronicle builds the output from the gcp section.
func NewChronicle(c *Config, env outputs.Env) (*Chronicle, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	ch := c.Chronicle
	if ch.ProjectID == "" || ch.InstanceID == "" {
		return nil, fmt.Errorf("gcp.chronicle.projectid and gcp.chronicle.instanceid must both be set")
	}
	creds, err := newCredentials(c, scopeCloudPlatform, ch.Endpoint, env)
	if err != nil {
		return nil, err
	}
	base := ch.Endpoint
	if base == "" {
		base = "https://chronicle." + ch.Region + ".rep.googleapis.com"
	}
	client, err := env.HTTPClient(true, false, nil)
	if err != nil {
		return nil, err
	}
	return &Chronicle{http: client, creds: creds, now: time.Now,
		url: strings.TrimRight(base, "/") + "/v1beta/projects/" + ch.ProjectID + "/locations/" + ch.Region +
			"/instances/" + ch.InstanceID + "/logTypes/" + ch.LogType + "/logs:import"}, nil
}

// Name implements delivery.Output.
func (c *Chronicle) Name() string { return nameChronicle }

// importRequest is logs.import's body with an inline source.
type importRequest struct {
	InlineSource struct {
		Logs []chronicleLog `json:"logs"`
	} `json:"inlineSource"`
}

// chronicleLog is one Log: data is bytes in the API, so base64 in JSON.
type chronicleLog struct {
	CollectionTime string `json:"collectionTime"`
	Data           []byte `json:"data"`
	LogEntryTime   string `json:"logEntryTime"`
}

// Send imports one event.
func (c *Chronicle) Send(ctx context.Context, ev *event.Event) error {
	return c.SendBatch(ctx, []*event.Event{ev})
}

// SendBatch imports the events in one call (all or nothing: the API imports the whole
// inline source or fails it).
func (c *Chronicle) SendBatch(ctx context.Context, evs []*event.Event) error {
	headers, err := authHeaders(ctx, c.creds)
	if err != nil {
		return err
	}
	body, err := json.Marshal(c.request(evs))
	if err != nil {
		return delivery.Permanent(fmt.Errorf("gcpchronicle: encode the import: %w", err))
	}
	return c.http.Send(ctx, httpout.Request{URL: c.url, ContentType: "application/json", Body: body, Headers: headers})
}

// request builds the import. As falcosidekick, the log's time is the event's and the
// collection time is now, or a second after the event when the event claims to be from the
// future: Chronicle refuses a log not collected after it happened. Unlike falcosidekick, both
// keep their fractional seconds: cut to the second, an event less than a second old had the
// same log and collection time, which the API refuses.
func (c *Chronicle) request(evs []*event.Event) *importRequest {
	req := &importRequest{}
	req.InlineSource.Logs = make([]chronicleLog, len(evs))
	now := c.now()
	for i, ev := range evs {
		collected := now
		if !collected.After(ev.Time) {
			collected = ev.Time.Add(time.Second)
		}
		req.InlineSource.Logs[i] = chronicleLog{Data: ev.JSON(), LogEntryTime: ev.Time.UTC().Format(time.RFC3339Nano),
			CollectionTime: collected.UTC().Format(time.RFC3339Nano)}
	}
	return req
}
