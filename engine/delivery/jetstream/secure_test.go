package jetstream

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/saker-dev/saker/internal/testpeers"
)

// startSecuredNATS runs nats-server with JetStream and the configuration block conf
// (authentication, TLS) on a free port.
func startSecuredNATS(t *testing.T, conf string) int {
	t.Helper()
	port := testpeers.FreePort(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "nats.conf")
	body := fmt.Sprintf("listen: 127.0.0.1:%d\njetstream { store_dir: %q }\n%s\n", port, filepath.Join(dir, "js"), conf)
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := testpeers.Bin(t, "nats-server")
	testpeers.Start(t, "nats-server", []string{bin, "-c", file}, nil, func() bool { return testpeers.PortOpen(port) }, 20*time.Second)
	return port
}

// usable opens the bus with cfg and stores one event through it.
func usable(t *testing.T, cfg *ExternalConfig) {
	t.Helper()
	b, err := OpenExternal(cfg, quiet())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer b.Shutdown()
	if !b.ready.Load() {
		t.Fatalf("stream not set up: %+v", b.State())
	}
	addWebhookWith(t, b, 1)
	d, _ := receiveSeq(t, b, "webhook")
	d.Done()
}

// refused opens the bus with cfg and expects start-up to stop with an error containing want
// (a configuration mistake), never a secret.
func refused(t *testing.T, cfg *ExternalConfig, want string, secrets ...string) {
	t.Helper()
	b, err := OpenExternal(cfg, quiet())
	if err == nil {
		b.Shutdown()
		t.Fatalf("opened; want an error containing %q", want)
	}
	if !strings.Contains(strings.ToLower(err.Error()), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q shows a secret", err)
		}
	}
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// bus.jetstream.nkeyfile: a server that knows the user's public nkey accepts the seed's
// signature; another seed is refused.
func TestExternalNKey(t *testing.T) {
	user, _ := nkeys.CreateUser()
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	port := startSecuredNATS(t, fmt.Sprintf("authorization { users = [ { nkey: %s } ] }", pub))
	cfg := DefaultExternalConfig()
	cfg.URL = "nats://127.0.0.1:" + strconv.Itoa(port)
	cfg.NKeyFile = writeFile(t, "user.nk", string(seed))
	usable(t, cfg)

	other, _ := nkeys.CreateUser()
	otherSeed, _ := other.Seed()
	cfg.NKeyFile = writeFile(t, "other.nk", string(otherSeed))
	refused(t, cfg, "authorization", string(otherSeed))

	cfg.NKeyFile = writeFile(t, "junk.nk", "not a seed")
	refused(t, cfg, "bus.jetstream.nkeyfile")
}

// bus.jetstream.credsfile: a server in operator mode (decentralized JWT authentication)
// accepts a user JWT of an account it trusts, with JetStream enabled for that account.
func TestExternalCredsFile(t *testing.T) {
	op, _ := nkeys.CreateOperator()
	opPub, _ := op.PublicKey()
	opClaims := jwt.NewOperatorClaims(opPub)
	opClaims.Name = "saker-test"
	opJWT, err := opClaims.Encode(op)
	if err != nil {
		t.Fatal(err)
	}
	sys, _ := nkeys.CreateAccount()
	sysPub, _ := sys.PublicKey()
	sysClaims := jwt.NewAccountClaims(sysPub)
	sysClaims.Name = "SYS"
	sysJWT, err := sysClaims.Encode(op)
	if err != nil {
		t.Fatal(err)
	}
	acct, _ := nkeys.CreateAccount()
	acctPub, _ := acct.PublicKey()
	acctClaims := jwt.NewAccountClaims(acctPub)
	acctClaims.Name = "saker"
	acctClaims.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	acctJWT, err := acctClaims.Encode(op)
	if err != nil {
		t.Fatal(err)
	}
	creds := func(signer nkeys.KeyPair) string {
		user, _ := nkeys.CreateUser()
		userPub, _ := user.PublicKey()
		userSeed, _ := user.Seed()
		userJWT, err := jwt.NewUserClaims(userPub).Encode(signer)
		if err != nil {
			t.Fatal(err)
		}
		b, err := jwt.FormatUserConfig(userJWT, userSeed)
		if err != nil {
			t.Fatal(err)
		}
		return writeFile(t, "user.creds", string(b))
	}
	opFile := writeFile(t, "operator.jwt", opJWT)
	port := startSecuredNATS(t, fmt.Sprintf("operator: %q\nsystem_account: %s\nresolver: MEMORY\nresolver_preload: { %s: %q, %s: %q }",
		opFile, sysPub, sysPub, sysJWT, acctPub, acctJWT))
	cfg := DefaultExternalConfig()
	cfg.URL = "nats://127.0.0.1:" + strconv.Itoa(port)
	cfg.CredsFile = creds(acct)
	usable(t, cfg)

	// A user signed by an account the server does not know is refused.
	stranger, _ := nkeys.CreateAccount()
	cfg.CredsFile = creds(stranger)
	refused(t, cfg, "authorization")
}

// bus.jetstream.tls.*: a server with TLS and client certificate verification accepts saker
// with the CA and a client certificate; without the CA, or without the client certificate,
// start-up stops with the TLS error.
func TestExternalTLS(t *testing.T) {
	p := testpeers.NewPKI(t)
	port := startSecuredNATS(t, fmt.Sprintf("tls { cert_file: %q, key_file: %q, ca_file: %q, verify: true, timeout: 2 }",
		p.ServerCertFile, p.ServerKeyFile, p.CAFile))
	cfg := DefaultExternalConfig()
	cfg.URL = "tls://127.0.0.1:" + strconv.Itoa(port)
	cfg.TLS = ClientTLS{CACertFile: p.CAFile, CertFile: p.ClientCertFile, KeyFile: p.ClientKeyFile}
	usable(t, cfg)

	cfg.TLS = ClientTLS{CertFile: p.ClientCertFile, KeyFile: p.ClientKeyFile}
	refused(t, cfg, "certificate")

	// The server refuses a missing client certificate once the client's side of the
	// handshake is done: the connection is closed, and start-up stops with the TLS error.
	cfg.TLS = ClientTLS{CACertFile: p.CAFile}
	refused(t, cfg, "tls")

	cfg.TLS = ClientTLS{CACertFile: filepath.Join(t.TempDir(), "missing.pem")}
	refused(t, cfg, "bus.jetstream.tls.cacertfile")
}
