// Package falcopost is the output the function and automation outputs share (n8n, Node-RED,
// Falco Talon, Tekton, Cloud Run, OpenFaaS, Fission, Kafka REST, CloudEvents, the Falcosidekick
// UI): each sends every event's Falco JSON, or a small envelope around it, to one URL. They
// differ only in their keys, the URL, the authentication headers and the envelope, so each
// of them is a configuration struct and a call to New.
package falcopost

import (
	"context"
	"fmt"
	"maps"
	"net"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
)

// JSONContentType is the content type of a Falco JSON body.
const JSONContentType = "application/json; charset=utf-8"

// Options describe one output.
type Options struct {
	// Name is the output's name, the prefix of its errors.
	Name string
	// URL receives every event; LogURL is how it appears in errors and logs when the URL
	// itself holds a credential (default: the URL without credentials).
	URL, LogURL string
	// ContentType defaults to JSONContentType.
	ContentType string
	// Headers go with every request (authentication, the user's custom headers).
	Headers              map[string]string
	CheckCert, MutualTLS bool
	// Body builds the request body; default: the event's Falco JSON.
	Body func(ev *event.Event) ([]byte, error)
	// EventHeaders adds headers that depend on the event (CloudEvents' Ce-*, Fission's
	// Event-Id).
	EventHeaders func(ev *event.Event) map[string]string
	// TransientStatus and RetryAfter: see httpout.Request.
	TransientStatus []int
	RetryAfter      func(body []byte) (time.Duration, bool)
	// Answer checks a successful answer's body, for services that report failures inside
	// a 2xx (Kafka REST's per-record error codes).
	Answer func(body []byte) error
}

// Output posts each event as its Options say.
type Output struct {
	o      Options
	client *httpout.Client
}

// New builds the output with the engine's HTTP client.
func New(o Options, env outputs.Env) (*Output, error) {
	client, err := env.HTTPClient(o.CheckCert, o.MutualTLS, o.Headers)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.Name, err)
	}
	if o.ContentType == "" {
		o.ContentType = JSONContentType
	}
	return &Output{o: o, client: client}, nil
}

// Name implements delivery.Output.
func (p *Output) Name() string { return p.o.Name }

// Send posts one event. A body that cannot be built is a permanent error: retrying would
// build the same.
func (p *Output) Send(ctx context.Context, ev *event.Event) error {
	body := ev.JSON()
	if p.o.Body != nil {
		b, err := p.o.Body(ev)
		if err != nil {
			return delivery.Permanent(fmt.Errorf("%s: encode: %w", p.o.Name, err))
		}
		body = b
	}
	req := httpout.Request{URL: p.o.URL, LogURL: p.o.LogURL, ContentType: p.o.ContentType, Body: body,
		TransientStatus: p.o.TransientStatus, RetryAfter: p.o.RetryAfter}
	if p.o.EventHeaders != nil {
		req.Headers = p.o.EventHeaders(ev)
	}
	if p.o.Answer == nil {
		if err := p.client.Send(ctx, req); err != nil {
			return fmt.Errorf("%s: %w", p.o.Name, err)
		}
		return nil
	}
	resp, err := p.client.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("%s: %w", p.o.Name, err)
	}
	if err := p.o.Answer(resp.Body); err != nil {
		return fmt.Errorf("%s: %w", p.o.Name, err)
	}
	return nil
}

// BasicAuth returns the Authorization header of HTTP basic authentication added to headers
// (a copy), or headers itself when user and password are both empty.
func BasicAuth(headers map[string]string, user, password string) map[string]string {
	if user == "" && password == "" {
		return headers
	}
	return With(headers, "Authorization", httpout.BasicAuth(user, password))
}

// With returns a copy of headers with name set to value; an empty name or value adds
// nothing. The user's custom headers are never modified in place.
func With(headers map[string]string, name, value string) map[string]string {
	out := maps.Clone(headers)
	if name == "" || value == "" {
		return out
	}
	if out == nil {
		out = map[string]string{}
	}
	out[name] = value
	return out
}

// Pair fails when only one of two keys that work together is set (a user without its
// password would silently send no credentials), naming the one that is missing.
func Pair(keyA, a, keyB, b string) error {
	switch {
	case a != "" && b == "":
		return fmt.Errorf("%s is set but %s is empty: set both or neither", keyA, keyB)
	case a == "" && b != "":
		return fmt.Errorf("%s is set but %s is empty: set both or neither", keyB, keyA)
	}
	return nil
}

// Service is a Kubernetes service as falcosidekick addressed the OpenFaaS gateway and the
// Fission router: by its in-cluster name, over plain HTTP.
type Service struct {
	Name, Namespace string
	// Suffix follows the namespace in the host name (".svc.cluster.local" for Fission).
	Suffix string
	Port   int
}

// Validate names the service's keys at fault.
func (s Service) Validate(nameKey, portKey string) error {
	if s.Name == "" {
		return fmt.Errorf("%s must not be empty", nameKey)
	}
	if s.Port < 1 || s.Port > 65535 {
		return fmt.Errorf("%s must be a port (1-65535), got %d", portKey, s.Port)
	}
	return nil
}

// URL is http://<name>.<namespace><suffix>:<port><path>. An empty namespace makes Name the
// host as it is, for a service reached from outside the cluster (an address, a DNS name).
func (s Service) URL(path string) string {
	host := s.Name
	if s.Namespace != "" {
		host += "." + s.Namespace + s.Suffix
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(s.Port)) + path
}

// EventID is the Event-Id header of the function outputs (Fission, Kubeless): the event's
// UUID, the same on every retry so the function can tell a retry from a new event
// (falcosidekick drew a new one per request); a new one for an event without.
func EventID(ev *event.Event) string {
	if ev.UUID != "" {
		return ev.UUID
	}
	return uuid.NewString()
}
