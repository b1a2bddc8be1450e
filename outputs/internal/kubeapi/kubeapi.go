// Package kubeapi is the small Kubernetes API client of the outputs that talk to the API
// server (PolicyReport, Kubeless through the service proxy): where the server is and how to
// authenticate, from the pod's service account or a kubeconfig file, and plain REST calls
// over the engine's HTTP client. client-go would bring tens of megabytes of generated types
// and its own retry and rate-limit machinery for the handful of calls these outputs make.
package kubeapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
)

// ServiceAccountDir is where Kubernetes mounts a pod's service account (token, ca.crt,
// namespace). A variable so that tests can point it at their own files.
var ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// Config says where the API server is and how to authenticate to it.
type Config struct {
	// Server is the API server's base URL (https://host:port).
	Server string
	// TLS verifies the server (its CA) and holds the client certificate, if any.
	TLS *tls.Config
	// Namespace is the service account's namespace (in cluster) or the kubeconfig
	// context's; empty when neither says.
	Namespace string
	// Source says where the configuration came from, for logs and errors.
	Source string

	token             string
	tokenFile         string
	username, passwrd string
}

// InClusterSource is the Source of InClusterConfig's configuration.
const InClusterSource = "in-cluster service account"

// InCluster reports whether saker runs in a pod with a service account: the variables
// Kubernetes sets in every container and the mounted token.
func InCluster() bool {
	if os.Getenv("KUBERNETES_SERVICE_HOST") == "" || os.Getenv("KUBERNETES_SERVICE_PORT") == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(ServiceAccountDir, "token"))
	return err == nil
}

// InClusterConfig is the configuration of a pod: the API server from
// KUBERNETES_SERVICE_HOST/PORT, the service account's token (re-read as the kubelet rotates
// it) and CA.
func InClusterConfig() (*Config, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, errors.New("not in a Kubernetes pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set")
	}
	caFile := filepath.Join(ServiceAccountDir, "ca.crt")
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("service account CA: %w", err)
	}
	tlsCfg, err := tlsConfig(ca, nil, nil, false, "")
	if err != nil {
		return nil, fmt.Errorf("service account CA %s: %w", caFile, err)
	}
	c := &Config{Server: "https://" + net.JoinHostPort(host, port), TLS: tlsCfg, Source: InClusterSource,
		tokenFile: filepath.Join(ServiceAccountDir, "token")}
	if ns, err := os.ReadFile(filepath.Join(ServiceAccountDir, "namespace")); err == nil {
		c.Namespace = strings.TrimSpace(string(ns))
	}
	if _, err := os.Stat(c.tokenFile); err != nil {
		return nil, fmt.Errorf("service account token: %w", err)
	}
	return c, nil
}

// kubeconfig is the part of a kubeconfig file saker reads.
type kubeconfig struct {
	CurrentContext string `yaml:"current-context"`
	Clusters       []struct {
		Name    string `yaml:"name"`
		Cluster struct {
			Server                   string `yaml:"server"`
			CertificateAuthority     string `yaml:"certificate-authority"`
			CertificateAuthorityData string `yaml:"certificate-authority-data"`
			InsecureSkipTLSVerify    bool   `yaml:"insecure-skip-tls-verify"`
			TLSServerName            string `yaml:"tls-server-name"`
			ProxyURL                 string `yaml:"proxy-url"`
		} `yaml:"cluster"`
	} `yaml:"clusters"`
	Users []struct {
		Name string `yaml:"name"`
		User struct {
			Token                 string         `yaml:"token"`
			TokenFile             string         `yaml:"tokenFile"`
			ClientCertificate     string         `yaml:"client-certificate"`
			ClientCertificateData string         `yaml:"client-certificate-data"`
			ClientKey             string         `yaml:"client-key"`
			ClientKeyData         string         `yaml:"client-key-data"`
			Username              string         `yaml:"username"`
			Password              string         `yaml:"password"`
			Exec                  map[string]any `yaml:"exec"`
			AuthProvider          map[string]any `yaml:"auth-provider"`
		} `yaml:"user"`
	} `yaml:"users"`
	Contexts []struct {
		Name    string `yaml:"name"`
		Context struct {
			Cluster   string `yaml:"cluster"`
			User      string `yaml:"user"`
			Namespace string `yaml:"namespace"`
		} `yaml:"context"`
	} `yaml:"contexts"`
}

// ExpandHome replaces a leading ~/ with the user's home directory, as a shell would: the
// default of falcosidekick's kubeconfig keys is "~/.kube/config".
func ExpandHome(path string) string {
	if path != "~" && !strings.HasPrefix(path, "~/") {
		return path
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return path
	}
	return filepath.Join(home, strings.TrimPrefix(path, "~"))
}

// FromKubeconfig reads the current context of a kubeconfig file: its cluster's server and
// CA (file or inline data, or insecure-skip-tls-verify) and its user's token, token file,
// client certificate or basic credentials. Exec plugins and auth providers are not
// supported (they run other programs); the error says so. Relative file names are relative
// to the kubeconfig's folder, as kubectl reads them.
func FromKubeconfig(path string) (*Config, error) {
	path = ExpandHome(path)
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	var kc kubeconfig
	if err := yaml.Unmarshal(raw, &kc); err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	if kc.CurrentContext == "" {
		return nil, fmt.Errorf("kubeconfig %s: no current-context", path)
	}
	ctxIdx := -1
	for i := range kc.Contexts {
		if kc.Contexts[i].Name == kc.CurrentContext {
			ctxIdx = i
		}
	}
	if ctxIdx < 0 {
		return nil, fmt.Errorf("kubeconfig %s: current-context %q is not among its contexts", path, kc.CurrentContext)
	}
	kctx := kc.Contexts[ctxIdx].Context
	dir := filepath.Dir(path)
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	c := &Config{Namespace: kctx.Namespace, Source: "kubeconfig " + path}
	found := false
	var ca []byte
	var insecure bool
	var serverName string
	for _, cl := range kc.Clusters {
		if cl.Name != kctx.Cluster {
			continue
		}
		found = true
		c.Server = strings.TrimRight(cl.Cluster.Server, "/")
		insecure, serverName = cl.Cluster.InsecureSkipTLSVerify, cl.Cluster.TLSServerName
		if cl.Cluster.ProxyURL != "" {
			return nil, fmt.Errorf("kubeconfig %s: cluster %q: proxy-url is not supported (set HTTPS_PROXY instead)", path, cl.Name)
		}
		if ca, err = fileOrData(rel(cl.Cluster.CertificateAuthority), cl.Cluster.CertificateAuthorityData); err != nil {
			return nil, fmt.Errorf("kubeconfig %s: cluster %q: certificate-authority: %w", path, cl.Name, err)
		}
	}
	if !found {
		return nil, fmt.Errorf("kubeconfig %s: context %q names cluster %q, which is not defined", path, kc.CurrentContext, kctx.Cluster)
	}
	if err := outputs.ValidateURL("kubeconfig "+path+" server", c.Server); err != nil {
		return nil, err
	}
	var cert, key []byte
	for _, u := range kc.Users {
		if u.Name != kctx.User {
			continue
		}
		where := fmt.Sprintf("kubeconfig %s: user %q", path, u.Name)
		if u.User.Exec != nil || u.User.AuthProvider != nil {
			return nil, fmt.Errorf("%s: exec and auth-provider credentials are not supported: use a token, a token file or a client certificate (a service account token: kubectl create token)", where)
		}
		c.token, c.tokenFile = u.User.Token, rel(u.User.TokenFile)
		c.username, c.passwrd = u.User.Username, u.User.Password
		if cert, err = fileOrData(rel(u.User.ClientCertificate), u.User.ClientCertificateData); err != nil {
			return nil, fmt.Errorf("%s: client-certificate: %w", where, err)
		}
		if key, err = fileOrData(rel(u.User.ClientKey), u.User.ClientKeyData); err != nil {
			return nil, fmt.Errorf("%s: client-key: %w", where, err)
		}
	}
	if c.TLS, err = tlsConfig(ca, cert, key, insecure, serverName); err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return c, nil
}

// fileOrData returns the inline base64 data, else the file's content, else nothing.
func fileOrData(file, data string) ([]byte, error) {
	if data != "" {
		b, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return nil, errors.New("the -data value is not base64")
		}
		return b, nil
	}
	if file == "" {
		return nil, nil
	}
	return os.ReadFile(file)
}

// tlsConfig trusts ca only (the cluster's CA, as kubectl does) or, without one, the system
// roots, and presents cert and key when given.
func tlsConfig(ca, cert, key []byte, insecure bool, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure, ServerName: serverName} //nolint:gosec // insecure-skip-tls-verify is the kubeconfig's explicit choice
	if len(ca) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, errors.New("no PEM certificate in the CA")
		}
		cfg.RootCAs = pool
	}
	if len(cert) > 0 || len(key) > 0 {
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("client certificate and key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// Client calls one API server.
type Client struct {
	cfg  *Config
	http *httpout.Client

	mu        sync.Mutex
	fileToken string
	readAt    time.Time
}

// tokenMaxAge is how long a token read from a file is used before it is read again: the
// kubelet replaces a projected service account token well before it expires.
const tokenMaxAge = time.Minute

// New builds a client over the engine's HTTP client (pooling, proxy, deadlines).
func New(cfg *Config, env outputs.Env) (*Client, error) {
	h, err := httpout.New(httpout.Options{TLSConfig: cfg.TLS, MaxConns: env.Policy.MaxConcurrentRequests})
	if err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, http: h}, nil
}

// Config returns the client's configuration.
func (c *Client) Config() *Config { return c.cfg }

// authorization is the Authorization header of the next call.
func (c *Client) authorization() (string, error) {
	switch {
	case c.cfg.token != "":
		return "Bearer " + c.cfg.token, nil
	case c.cfg.tokenFile != "":
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.fileToken == "" || time.Since(c.readAt) > tokenMaxAge {
			b, err := os.ReadFile(c.cfg.tokenFile)
			if err != nil {
				return "", fmt.Errorf("token: %w", err)
			}
			c.fileToken, c.readAt = strings.TrimSpace(string(b)), time.Now()
		}
		return "Bearer " + c.fileToken, nil
	case c.cfg.username != "" || c.cfg.passwrd != "":
		return httpout.BasicAuth(c.cfg.username, c.cfg.passwrd), nil
	}
	return "", nil
}

// Request is one API call.
type Request struct {
	Method, Path string // Path starts with /api or /apis
	ContentType  string
	Body         []byte
	Headers      map[string]string
	// Accept lists the error statuses returned in the Response (404, 409) rather than as
	// an error.
	Accept []int
}

// Do sends the request; statuses map onto the engine's retry decisions as for any HTTP
// output (401 and 403 are permanent: a missing RBAC rule is not fixed by retrying).
func (c *Client) Do(ctx context.Context, r Request) (*httpout.Response, error) {
	auth, err := c.authorization()
	if err != nil {
		return nil, err
	}
	headers := map[string]string{"Accept": "application/json"}
	for k, v := range r.Headers {
		headers[k] = v
	}
	if auth != "" {
		headers["Authorization"] = auth
	}
	ct := r.ContentType
	if ct == "" && r.Body != nil {
		ct = "application/json"
	}
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	return c.http.Do(ctx, httpout.Request{Method: method, URL: c.cfg.Server + r.Path, ContentType: ct, Body: r.Body,
		Headers: headers, AcceptStatus: r.Accept})
}

// Status is the Kubernetes Status object an API error answers with.
type Status struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
	Details struct {
		Kind string `json:"kind"`
		Name string `json:"name"`
	} `json:"details"`
}

// StatusOf decodes an error answer's Status (zero when the body is not one).
func StatusOf(body []byte) Status {
	var s Status
	_ = json.Unmarshal(body, &s)
	return s
}
