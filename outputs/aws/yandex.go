package aws

import (
	"fmt"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/outputs"
)

// YandexConfig is falcosidekick's yandex.* section: Yandex Cloud's Object Storage
// (S3-compatible) and Data Streams (Kinesis-compatible), reached with the AWS SDK and a
// static key of a Yandex service account.
type YandexConfig struct {
	AccessKeyID     string          `koanf:"accesskeyid" doc:"static access key id of the service account"`
	SecretAccessKey string          `koanf:"secretaccesskey" secret:"true" doc:"static secret access key of the service account"`
	Region          string          `koanf:"region" doc:"signing region"`
	S3              YandexS3Config  `koanf:"s3"`
	DataStreams     YandexYDSConfig `koanf:"datastreams"`
}

// YandexS3Config is yandex.s3.*.
type YandexS3Config struct {
	Endpoint       string `koanf:"endpoint" doc:"Object Storage endpoint URL"`
	Bucket         string `koanf:"bucket" doc:"bucket name; setting it enables the yandexs3 output (one object per event)"`
	Prefix         string `koanf:"prefix" doc:"key prefix: objects are PREFIX/YYYY-MM-DD/<RFC 3339 time>.json"`
	ForcePathStyle bool   `koanf:"forcepathstyle" doc:"address the bucket as ENDPOINT/BUCKET instead of BUCKET.ENDPOINT (saker's own key)"`
}

// YandexYDSConfig is yandex.datastreams.*.
type YandexYDSConfig struct {
	Endpoint   string `koanf:"endpoint" doc:"Data Streams endpoint URL"`
	StreamName string `koanf:"streamname" doc:"stream name, /REGION/FOLDER_ID/DATABASE_ID/STREAM; setting it enables the yandexdatastreams output"`
}

// yandexDefaults are falcosidekick's.
func yandexDefaults() *YandexConfig {
	return &YandexConfig{Region: "ru-central1",
		S3:          YandexS3Config{Endpoint: "https://storage.yandexcloud.net", Prefix: "falco"},
		DataStreams: YandexYDSConfig{Endpoint: "https://yds.serverless.yandexcloud.net"}}
}

const (
	nameYandexS3  = "yandexs3"
	nameYandexYDS = "yandexdatastreams"
)

func init() {
	s := outputs.Define(nameYandexS3, "yandex", yandexDefaults,
		func(c *YandexConfig) bool { return c.S3.Bucket != "" },
		func(c *YandexConfig, env outputs.Env) (delivery.Output, error) { return NewYandexS3(c, env) })
	s.PolicyPath = "yandex.s3"
	s.Doc = "write each event's Falco JSON as an object to a Yandex Object Storage bucket"
	outputs.Register(s)

	s = outputs.Define(nameYandexYDS, "yandex", yandexDefaults,
		func(c *YandexConfig) bool { return c.DataStreams.StreamName != "" },
		func(c *YandexConfig, env outputs.Env) (delivery.Output, error) { return NewYandexDataStreams(c, env) })
	s.PolicyPath = "yandex.datastreams"
	s.Doc = "put events into a Yandex Data Streams stream (Kinesis API, PutRecords batches)"
	s.Batch = kinesisBatch
	outputs.Register(s)
}

// Validate names the key at fault; the credentials are required once an output is enabled.
func (c *YandexConfig) Validate() error {
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") ||
		(c.S3.Bucket != "" || c.DataStreams.StreamName != "") && c.AccessKeyID == "" {
		return fmt.Errorf("yandex.accesskeyid and yandex.secretaccesskey must both be set (a static key of the service account)")
	}
	if c.Region == "" {
		return fmt.Errorf("yandex.region is empty (Yandex Cloud's is ru-central1)")
	}
	for _, ep := range []struct{ key, val string }{{"yandex.s3.endpoint", c.S3.Endpoint}, {"yandex.datastreams.endpoint", c.DataStreams.Endpoint}} {
		if ep.val == "" {
			return fmt.Errorf("%s is empty", ep.key)
		}
		if err := outputs.ValidateURL(ep.key, ep.val); err != nil {
			return err
		}
	}
	if err := checkS3("yandex.s3", c.S3.Bucket, c.S3.Prefix, nil); err != nil {
		return err
	}
	return checkStreamName("yandex.datastreams.streamname", c.DataStreams.StreamName)
}

// awsConfig is the SDK session of the yandex section: its static key and region, no
// identity check (Yandex serves no STS).
func (c *YandexConfig) awsConfig() *Config {
	return &Config{Region: c.Region, AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey}
}

// NewYandexS3 builds the yandexs3 output.
func NewYandexS3(c *YandexConfig, env outputs.Env) (*S3, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.S3.Bucket == "" {
		return nil, fmt.Errorf("yandex.s3.bucket is empty")
	}
	base, err := sdkConfig(c.awsConfig(), env.Logger())
	if err != nil {
		return nil, fmt.Errorf("yandex: %w", err)
	}
	// falcosidekick sent no ACL to Yandex.
	return newS3(base, s3Target{name: nameYandexS3, bucket: c.S3.Bucket, prefix: c.S3.Prefix,
		endpoint: c.S3.Endpoint, pathStyle: c.S3.ForcePathStyle}, env.Logger()), nil
}

// NewYandexDataStreams builds the yandexdatastreams output.
func NewYandexDataStreams(c *YandexConfig, env outputs.Env) (*Kinesis, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.DataStreams.StreamName == "" {
		return nil, fmt.Errorf("yandex.datastreams.streamname is empty")
	}
	base, err := sdkConfig(c.awsConfig(), env.Logger())
	if err != nil {
		return nil, fmt.Errorf("yandex: %w", err)
	}
	return newKinesis(nameYandexYDS, base, c.DataStreams.Endpoint, c.DataStreams.StreamName, env.Logger()), nil
}
