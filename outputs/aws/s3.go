package aws

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
)

// S3 writes each event's Falco JSON as one object, at falcosidekick's key layout
// PREFIX/YYYY-MM-DD/<RFC 3339 time with nanoseconds>.json. It serves awss3 and yandexs3.
type S3 struct {
	name   string
	client *s3.Client
	bucket string
	prefix string
	acl    types.ObjectCannedACL
	log    *slog.Logger
}

// s3Target is what differs between the S3 outputs.
type s3Target struct {
	name, bucket, prefix, acl, endpoint string
	pathStyle                           bool
}

// NewS3 builds the awss3 output from the aws section.
func NewS3(c *Config, env outputs.Env) (*S3, error) {
	cfg, err := c.parse()
	if err != nil {
		return nil, err
	}
	if cfg.S3.Bucket == "" {
		return nil, fmt.Errorf("aws.s3.bucket is empty")
	}
	base, err := sdkConfig(cfg, env.Logger())
	if err != nil {
		return nil, err
	}
	return newS3(base, s3Target{name: nameS3, bucket: cfg.S3.Bucket, prefix: cfg.S3.Prefix, acl: cfg.S3.ObjectCannedACL,
		endpoint: cfg.S3.Endpoint, pathStyle: cfg.S3.ForcePathStyle}, env.Logger()), nil
}

func newS3(base sdkaws.Config, t s3Target, log *slog.Logger) *S3 {
	client := s3.NewFromConfig(base, func(o *s3.Options) {
		if t.endpoint != "" {
			o.BaseEndpoint = sdkaws.String(t.endpoint)
		}
		o.UsePathStyle = t.pathStyle
		// The SDK's default adds CRC32 checksum headers that several S3-compatible stores
		// (Yandex among them) refuse; SigV4's payload hash already protects the body.
		o.RequestChecksumCalculation = sdkaws.RequestChecksumCalculationWhenRequired
	})
	return &S3{name: t.name, client: client, bucket: t.bucket, prefix: strings.Trim(t.prefix, "/"),
		acl: types.ObjectCannedACL(t.acl), log: log}
}

// Name implements delivery.Output.
func (o *S3) Name() string { return o.name }

// Send puts the event's object. Each attempt writes a new key, so a retry after a put whose
// answer was lost leaves a duplicate object rather than nothing.
func (o *S3) Send(ctx context.Context, ev *event.Event) error {
	key := s3Key(o.prefix, objectTime())
	in := &s3.PutObjectInput{Bucket: sdkaws.String(o.bucket), Key: sdkaws.String(key),
		Body: bytes.NewReader(ev.JSON()), ContentType: sdkaws.String("application/json")}
	if o.acl != "" {
		in.ACL = o.acl
	}
	if _, err := o.client.PutObject(ctx, in); err != nil {
		return classify(fmt.Sprintf("s3 PutObject s3://%s/%s", o.bucket, key), err)
	}
	o.log.Debug("object written", "bucket", o.bucket, "key", key)
	return nil
}

// s3Key is falcosidekick's layout, without its leading "/" when the prefix is empty (S3
// would store a key starting with "/", which most tools show as an empty folder).
func s3Key(prefix string, t time.Time) string {
	k := t.Format("2006-01-02") + "/" + t.Format(time.RFC3339Nano) + ".json"
	if prefix == "" {
		return k
	}
	return prefix + "/" + k
}

// lastObjectTime makes the times objectTime returns strictly increasing, so two events
// written in the same nanosecond (several workers) never share a key and overwrite each other.
var lastObjectTime struct {
	sync.Mutex
	t time.Time
}

func objectTime() time.Time {
	now := time.Now()
	lastObjectTime.Lock()
	defer lastObjectTime.Unlock()
	if !now.After(lastObjectTime.t) {
		now = lastObjectTime.t.Add(time.Nanosecond)
	}
	lastObjectTime.t = now
	return now
}

// checkS3 validates an S3 output's keys under section (aws.s3, yandex.s3) and normalises the
// canned ACL to the SDK's spelling.
func checkS3(section, bucket, prefix string, acl *string) error {
	if bucket != "" && (len(bucket) < 3 || len(bucket) > 63 || strings.ContainsAny(bucket, "/ :")) {
		return fmt.Errorf("%s.bucket must be a bucket name (3 to 63 characters, no '/', ':' or blank), got %q", section, bucket)
	}
	if strings.Contains(prefix, "//") {
		return fmt.Errorf("%s.prefix must not contain an empty path segment (//), got %q", section, prefix)
	}
	if acl == nil || *acl == "" {
		return nil
	}
	var names []string
	for _, v := range types.ObjectCannedACL("").Values() {
		if strings.EqualFold(string(v), *acl) {
			*acl = string(v)
			return nil
		}
		names = append(names, string(v))
	}
	return fmt.Errorf("%s.objectcannedacl must be one of %s (or empty), got %q", section, strings.Join(names, ", "), *acl)
}
