// Command lambda-recorder is the Lambda function saker's aws.lambda integration tests invoke
// through aws-lambda-rie. It appends every payload to the file named by $RECORD_TO (one JSON
// document per line) so a test can read back exactly what was delivered, and it fails on
// purpose when the payload contains $FAIL_ON, so a test can prove that a function error is a
// failed delivery.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/aws/aws-lambda-go/lambda"
)

// mu serialises appends; the runtime invokes one at a time, but the lock costs nothing and
// keeps lines whole should that change.
var mu sync.Mutex

func record(payload json.RawMessage) error {
	path := os.Getenv("RECORD_TO")
	if path == "" {
		return errors.New("RECORD_TO is not set")
	}
	mu.Lock()
	defer mu.Unlock()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	line := append(bytes.TrimSpace(payload), '\n')
	if _, err := f.Write(line); err != nil {
		f.Close()
		return fmt.Errorf("append to %s: %w", path, err)
	}
	return f.Close()
}

func handle(_ context.Context, payload json.RawMessage) (map[string]any, error) {
	if marker := os.Getenv("FAIL_ON"); marker != "" && bytes.Contains(payload, []byte(marker)) {
		return nil, fmt.Errorf("payload contains %q: failing on purpose", marker)
	}
	if err := record(payload); err != nil {
		return nil, err
	}
	return map[string]any{"recorded": len(payload)}, nil
}

func main() { lambda.Start(handle) }
