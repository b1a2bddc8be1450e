package gcp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/auth/credentials"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
)

// The OAuth2 scopes falcosidekick asks for, per API.
const (
	scopePubSub        = "https://www.googleapis.com/auth/pubsub"
	scopeStorage       = "https://www.googleapis.com/auth/devstorage.read_write"
	scopeCloudPlatform = "https://www.googleapis.com/auth/cloud-platform"
)

// credentialTypes are the key files gcp.credentials may hold. The auth library would load
// more (a client_credentials.json starts a browser flow); these are the ones a daemon can use.
var credentialTypes = []credentials.CredType{credentials.ServiceAccount, credentials.AuthorizedUser,
	credentials.ExternalAccount, credentials.ImpersonatedServiceAccount}

// decodeCredentials reads gcp.credentials: base64 (standard alphabet, line breaks allowed, as
// `base64 key.json` prints it) of a JSON key file. It returns the JSON and its type. Errors
// name the key, never the value.
func decodeCredentials(value string) ([]byte, credentials.CredType, error) {
	clean := strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, value)
	raw, err := base64.StdEncoding.DecodeString(clean)
	if err != nil {
		return nil, "", fmt.Errorf("gcp.credentials must be the base64 of a JSON key file (base64 -w0 key.json); it does not decode as base64 (value not shown)")
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, "", fmt.Errorf("gcp.credentials decodes from base64 but not to a JSON key file (value not shown): %w", err)
	}
	for _, t := range credentialTypes {
		if credentials.CredType(head.Type) == t {
			return raw, t, nil
		}
	}
	names := make([]string, len(credentialTypes))
	for i, t := range credentialTypes {
		names[i] = string(t)
	}
	return nil, "", fmt.Errorf("gcp.credentials: key file type %q is not supported (one of %s)", head.Type, strings.Join(names, ", "))
}

// tokenTimeout bounds one token request when the caller's context has no deadline.
const tokenTimeout = 30 * time.Second

// newCredentials returns what authenticates an output's requests, or nil for none:
//   - gcp.credentials set: that key file, with scope;
//   - empty, with the output's endpoint override set: none (an emulator such as pstest or
//     fake-gcs-server, or a proxy that authenticates for saker);
//   - empty, without an override: Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS,
//     gcloud's file, the metadata server of GCE/GKE/Cloud Run), as falcosidekick did.
//
// Token requests go through a client with saker's TLS policy and proxy settings.
func newCredentials(c *Config, scope, override string, env outputs.Env) (*auth.Credentials, error) {
	if c.Credentials == "" && override != "" {
		return nil, nil
	}
	tr, err := httpout.NewTransport(httpout.Options{CheckCert: true, TLS: env.TLS})
	if err != nil {
		return nil, err
	}
	// The library's own logger stays off whatever GOOGLE_SDK_GO_LOGGING_LEVEL says: at debug
	// level it prints token requests and answers, which hold credentials.
	opts := &credentials.DetectOptions{Scopes: []string{scope}, Client: &http.Client{Transport: tr, Timeout: tokenTimeout},
		Logger: slog.New(slog.DiscardHandler)}
	if c.Credentials == "" {
		creds, err := credentials.DetectDefault(opts)
		if err != nil {
			return nil, fmt.Errorf("gcp.credentials is empty and no Application Default Credentials were found "+
				"(set gcp.credentials, or GOOGLE_APPLICATION_CREDENTIALS, or run on Google Cloud): %w", err)
		}
		return creds, nil
	}
	raw, typ, err := decodeCredentials(c.Credentials)
	if err != nil {
		return nil, err
	}
	creds, err := credentials.NewCredentialsFromJSON(typ, raw, opts)
	if err != nil {
		return nil, fmt.Errorf("gcp.credentials: load the %s key file: %w", typ, err)
	}
	return creds, nil
}

// bearer returns the Authorization header value for one request, fetching or refreshing the
// token within ctx (the attempt's deadline). A token endpoint that refuses the key is a
// permanent error; one that cannot be reached is transient.
func bearer(ctx context.Context, creds *auth.Credentials) (string, error) {
	tok, err := creds.Token(ctx)
	if err != nil {
		return "", classifyTokenError(err)
	}
	typ := tok.Type
	if typ == "" || strings.EqualFold(typ, "bearer") {
		typ = "Bearer"
	}
	return typ + " " + tok.Value, nil
}

// classifyTokenError tells a refused key (the token endpoint answered 4xx: revoked, deleted,
// wrong scopes) from a failure to reach it.
func classifyTokenError(err error) error {
	err = fmt.Errorf("gcp: get an OAuth2 token: %w", err)
	var re *auth.Error
	if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 &&
		re.Response.StatusCode != http.StatusTooManyRequests && re.Response.StatusCode != http.StatusRequestTimeout {
		return delivery.Permanent(err)
	}
	return err
}

// authHeaders is the per-request header map of an HTTP call: the token when creds is set.
func authHeaders(ctx context.Context, creds *auth.Credentials) (map[string]string, error) {
	if creds == nil {
		return nil, nil
	}
	h, err := bearer(ctx, creds)
	if err != nil {
		return nil, err
	}
	return map[string]string{"Authorization": h}, nil
}
