package outputs

import (
	"strings"
	"testing"
)

func TestValidateURL(t *testing.T) {
	for value, want := range map[string]string{
		"https://hooks.example/x":          "",
		"http://127.0.0.1:8080":            "",
		"localhost:8080/x":                 "webhook.address: missing scheme http:// or https://",
		"hooks.example/services/T/B/TOKEN": "webhook.address: missing scheme http:// or https://",
		"ftp://x":                          `webhook.address must be an http:// or https:// URL, got scheme "ftp"`,
		"http:///path":                     "webhook.address must name a host",
		"http://[::1:80/TOKEN":             "webhook.address is not a valid URL",
	} {
		err := ValidateURL("webhook.address", value)
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("%q: %v, want %q", value, err, want)
		}
		if err != nil && (strings.Contains(err.Error(), "TOKEN") || strings.Contains(err.Error(), "unparseable")) {
			t.Errorf("%q: error prints the value: %v", value, err)
		}
	}
}

func TestCheckHeaders(t *testing.T) {
	if err := CheckHeaders("webhook.customheaders", map[string]string{"Authorization": "Bearer x", "X-Empty": ""}); err != nil {
		t.Errorf("valid headers: %v", err)
	}
	for name, value := range map[string]string{
		"Authorization Bearer SECRET": "",
		"":                            "v",
		"X-Ok":                        "SECRET\r\nX-Injected: 1",
		"Bad:Name":                    "SECRET",
	} {
		err := CheckHeaders("webhook.customheaders", map[string]string{name: value})
		if err == nil || !strings.HasPrefix(err.Error(), "webhook.customheaders: ") || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%q: %q: err = %v, want the key named and the value hidden", name, value, err)
		}
	}
	if err := CheckHeaders("k", nil); err != nil {
		t.Errorf("no headers: %v", err)
	}
}
