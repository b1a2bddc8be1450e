package gcp

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/outputs"
)

const testEmail = "falco@saker-test.iam.gserviceaccount.com"

// tokenServer is Google's OAuth2 token endpoint for a service account, as strict as Google's
// about what matters: a JWT bearer grant whose assertion is an RS256 JWT signed by the key
// the server knows, issued by the account, addressed to this endpoint, asking for the scope
// the test expects. It issues tokens "ya29.<n>" valid for an hour.
type tokenServer struct {
	*httptest.Server
	key    *rsa.PrivateKey
	scope  string
	refuse atomic.Bool // answer 400 invalid_grant, as for a deleted key

	mu     sync.Mutex
	issued []string
}

func newTokenServer(t *testing.T, scope string) *tokenServer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ts := &tokenServer{key: key, scope: scope}
	ts.Server = httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *tokenServer) tokenURL() string { return ts.URL + "/token" }

func (ts *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, desc string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":"invalid_grant","error_description":%q}`, desc)
	}
	if r.Method != http.MethodPost || r.URL.Path != "/token" {
		fail(http.StatusNotFound, "not the token endpoint")
		return
	}
	if ts.refuse.Load() {
		fail(http.StatusBadRequest, "Invalid JWT Signature.")
		return
	}
	if err := r.ParseForm(); err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	if g := r.PostForm.Get("grant_type"); g != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		fail(http.StatusBadRequest, "grant_type "+g)
		return
	}
	claims, err := ts.verify(r.PostForm.Get("assertion"))
	if err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	if claims.Iss != testEmail || claims.Aud != ts.tokenURL() || claims.Scope != ts.scope {
		fail(http.StatusBadRequest, fmt.Sprintf("claims iss=%s aud=%s scope=%s", claims.Iss, claims.Aud, claims.Scope))
		return
	}
	now := time.Now().Unix()
	if claims.Iat > now+60 || claims.Exp < now {
		fail(http.StatusBadRequest, "JWT not valid now")
		return
	}
	ts.mu.Lock()
	tok := fmt.Sprintf("ya29.%d", len(ts.issued)+1)
	ts.issued = append(ts.issued, tok)
	ts.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, tok)
}

type jwtClaims struct {
	Iss, Aud, Scope string
	Iat, Exp        int64
}

// verify checks an RS256 JWT against the server's key.
func (ts *tokenServer) verify(assertion string) (*jwtClaims, error) {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("assertion is not a JWT")
	}
	var head struct{ Alg string }
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || json.Unmarshal(hb, &head) != nil || head.Alg != "RS256" {
		return nil, fmt.Errorf("JWT header %s", hb)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&ts.key.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		return nil, fmt.Errorf("Invalid JWT Signature")
	}
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	var c jwtClaims
	if err := json.Unmarshal(pb, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// token returns the last token issued ("" before any).
func (ts *tokenServer) token() string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if len(ts.issued) == 0 {
		return ""
	}
	return ts.issued[len(ts.issued)-1]
}

// credentialsValue is gcp.credentials for the server's key: the base64 of a service account
// key file whose token_uri is the server.
func (ts *tokenServer) credentialsValue(t *testing.T) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(ts.key)
	if err != nil {
		t.Fatal(err)
	}
	key := map[string]string{
		"type": "service_account", "project_id": "saker-test", "private_key_id": "0123456789abcdef",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": testEmail, "client_id": "1234567890", "token_uri": ts.tokenURL(),
		"auth_uri": "https://accounts.google.com/o/oauth2/auth",
	}
	b, err := json.Marshal(key)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// TestCredentials: a key file gives tokens from its token_uri for the output's scope; a key
// the endpoint refuses is a permanent error; an unreachable endpoint is transient and bounded
// by the caller's deadline; without a key and with an endpoint override there is no token.
func TestCredentials(t *testing.T) {
	ts := newTokenServer(t, scopeStorage)
	c := defaults()
	c.Credentials = ts.credentialsValue(t)
	creds, err := newCredentials(c, scopeStorage, "http://127.0.0.1:1", outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := authHeaders(context.Background(), creds)
	if err != nil || h["Authorization"] != "Bearer ya29.1" {
		t.Fatalf("authHeaders = %v, %v; want Bearer ya29.1", h, err)
	}
	if h, _ := authHeaders(context.Background(), creds); h["Authorization"] != "Bearer ya29.1" {
		t.Errorf("the token is not cached: %v", h)
	}

	refused := newTokenServer(t, scopeStorage)
	refused.refuse.Store(true)
	c.Credentials = refused.credentialsValue(t)
	creds, err = newCredentials(c, scopeStorage, "", outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = authHeaders(context.Background(), creds)
	if err == nil || !delivery.IsPermanent(err) || strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Errorf("refused key: %v, want a permanent error without the key", err)
	}

	// A token endpoint that never answers: the attempt's deadline ends the wait.
	hang := hangingServer(t)
	ts2 := newTokenServer(t, scopeStorage)
	ts2.Close()
	ts2.URL = hang.URL
	c.Credentials = ts2.credentialsValue(t)
	creds, err = newCredentials(c, scopeStorage, "", outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = authHeaders(ctx, creds)
	if err == nil || delivery.IsPermanent(err) || time.Since(start) > 5*time.Second {
		t.Errorf("hanging token endpoint: %v after %s, want a transient error at the deadline", err, time.Since(start))
	}

	c.Credentials = ""
	if creds, err := newCredentials(c, scopeStorage, "http://127.0.0.1:4443", outputs.Env{}); creds != nil || err != nil {
		t.Errorf("no key with an endpoint override: %v, %v; want no credentials", creds, err)
	}
}

// TestApplicationDefaultCredentials: without gcp.credentials and without an endpoint
// override, the key file named by GOOGLE_APPLICATION_CREDENTIALS is used, as falcosidekick
// (through Google's libraries) did.
func TestApplicationDefaultCredentials(t *testing.T) {
	ts := newTokenServer(t, scopeCloudPlatform)
	raw, err := base64.StdEncoding.DecodeString(ts.credentialsValue(t))
	if err != nil {
		t.Fatal(err)
	}
	file := t.TempDir() + "/key.json"
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", file)
	creds, err := newCredentials(defaults(), scopeCloudPlatform, "", outputs.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := authHeaders(context.Background(), creds); err != nil || h["Authorization"] != "Bearer ya29.1" {
		t.Fatalf("ADC: %v, %v", h, err)
	}
}

// hangingServer accepts requests and never answers them (until the test ends).
func hangingServer(t *testing.T) *httptest.Server {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: the handlers return, then Close
	return srv
}
