package gcp

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"cloud.google.com/go/auth"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
)

// storageEndpoint is Cloud Storage's JSON API.
const storageEndpoint = "https://storage.googleapis.com"

// Storage is the gcpstorage output: each event's Falco JSON as one object, named as
// falcosidekick names it. It uses the JSON API's simple upload through saker's HTTP client
// rather than cloud.google.com/go/storage: one POST per event is all it needs, and the SDK
// would add its own retries, gRPC transport and several MB to the binary.
type Storage struct {
	http   *httpout.Client
	creds  *auth.Credentials
	base   string // scheme://host[:port][/path], no trailing slash
	bucket string
	prefix string
	now    func() time.Time
}

// NewStorage builds the output from the gcp section.
func NewStorage(c *Config, env outputs.Env) (*Storage, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Storage.Bucket == "" {
		return nil, fmt.Errorf("gcp.storage.bucket is empty")
	}
	base := c.Storage.Endpoint
	if base == "" {
		if host := os.Getenv("STORAGE_EMULATOR_HOST"); host != "" {
			// As cloud.google.com/go/storage reads it: host:port or a URL.
			base = host
			if !strings.Contains(host, "://") {
				base = "http://" + host
			}
			if err := outputs.ValidateURL("STORAGE_EMULATOR_HOST", base); err != nil {
				return nil, err
			}
		}
	}
	override := base
	if base == "" {
		base = storageEndpoint
	}
	creds, err := newCredentials(c, scopeStorage, override, env)
	if err != nil {
		return nil, err
	}
	client, err := env.HTTPClient(true, false, nil)
	if err != nil {
		return nil, err
	}
	return &Storage{http: client, creds: creds, base: strings.TrimRight(base, "/"), bucket: c.Storage.Bucket,
		prefix: c.Storage.Prefix, now: time.Now}, nil
}

// Name implements delivery.Output.
func (s *Storage) Name() string { return nameStorage }

// objectName is falcosidekick's: <prefix>/<YYYY-MM-DD>/<time, RFC 3339 with nanoseconds>.json,
// from the time of the upload. As falcosidekick, an empty prefix leaves the name starting
// with "/", so objects land where existing readers look for them.
func objectName(prefix string, t time.Time) string {
	return prefix + "/" + t.Format("2006-01-02") + "/" + t.Format(time.RFC3339Nano) + ".json"
}

// Send uploads the event as a new object. ifGenerationMatch=0 makes the upload fail rather
// than replace an object of the same name (two events uploaded in the same nanosecond); that
// 412 is retried, and the retry takes a new name.
func (s *Storage) Send(ctx context.Context, ev *event.Event) error {
	headers, err := authHeaders(ctx, s.creds)
	if err != nil {
		return err
	}
	name := objectName(s.prefix, s.now())
	u := s.base + "/upload/storage/v1/b/" + url.PathEscape(s.bucket) + "/o?uploadType=media&ifGenerationMatch=0&name=" +
		url.QueryEscape(name)
	return s.http.Send(ctx, httpout.Request{URL: u, ContentType: "application/json", Body: ev.JSON(), Headers: headers,
		TransientStatus: []int{http.StatusPreconditionFailed}})
}
