// Package aws holds saker's Amazon Web Services outputs: SQS (awssqs), SNS (awssns), Lambda
// (awslambda), S3 (awss3), CloudWatch Logs (awscloudwatchlogs), Kinesis (awskinesis) and
// Security Lake (awssecuritylake, OCSF records in Parquet files), and
// Yandex Cloud's S3-compatible Object Storage (yandexs3) and Kinesis-compatible Data Streams
// (yandexdatastreams), which speak the same protocols. The AWS outputs share falcosidekick's
// aws.* section (region, credentials, role to assume, identity check) and, when their shared
// settings are the same, one SDK configuration: one credential cache and one STS identity
// check for all of them.
//
// The SDK's own retryer is disabled: the delivery engine retries, and errors are classified
// here (throttling, 5xx and network errors transient; validation and other 4xx permanent).
package aws

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/httpout"
	"github.com/saker-dev/saker/outputs"
)

// Config is the aws.* section, shared by the awssqs, awssns and awslambda outputs.
type Config struct {
	Region          string `koanf:"region" doc:"AWS region; empty: AWS_REGION, AWS_DEFAULT_REGION, the shared config file, then the EC2 instance metadata"`
	AccessKeyID     string `koanf:"accesskeyid" doc:"static access key id (with secretaccesskey); empty: the SDK's default credential chain (env, shared files, web identity, ECS/EC2 roles)"`
	SecretAccessKey string `koanf:"secretaccesskey" secret:"true" doc:"static secret access key (with accesskeyid)"`
	RoleARN         string `koanf:"rolearn" doc:"role to assume with STS on top of the base credentials; refreshed before it expires"`
	ExternalID      string `koanf:"externalid" secret:"true" doc:"external id passed when assuming rolearn"`
	CheckIdentity   bool   `koanf:"checkidentity" doc:"call STS GetCallerIdentity when the outputs start and refuse to start them if it fails"`
	Endpoint        string `koanf:"endpoint" doc:"endpoint URL for every AWS service (an emulator, a proxy); per-service endpoints override it"`

	STS            STSConfig            `koanf:"sts"`
	SQS            SQSConfig            `koanf:"sqs"`
	SNS            SNSConfig            `koanf:"sns"`
	Lambda         LambdaConfig         `koanf:"lambda"`
	S3             S3Config             `koanf:"s3"`
	CloudWatchLogs CloudWatchLogsConfig `koanf:"cloudwatchlogs"`
	Kinesis        KinesisConfig        `koanf:"kinesis"`
	SecurityLake   SecurityLakeConfig   `koanf:"securitylake"`
}

// STSConfig is aws.sts.*: where the identity check and role assumption go.
type STSConfig struct {
	Endpoint string `koanf:"endpoint" doc:"STS endpoint URL (VPC endpoint, emulator); default aws.endpoint, else AWS"`
}

// SQSConfig is aws.sqs.*.
type SQSConfig struct {
	URL      string `koanf:"url" doc:"queue URL; setting it enables the awssqs output"`
	Endpoint string `koanf:"endpoint" doc:"SQS endpoint URL (emulator, VPC endpoint); default aws.endpoint, else AWS"`
}

// SNSConfig is aws.sns.*.
type SNSConfig struct {
	TopicArn string `koanf:"topicarn" doc:"topic ARN; setting it enables the awssns output"`
	RawJSON  bool   `koanf:"rawjson" doc:"publish the event's Falco JSON instead of its output line with the fields as message attributes"`
	Endpoint string `koanf:"endpoint" doc:"SNS endpoint URL (emulator, VPC endpoint); default aws.endpoint, else AWS"`
}

// LambdaConfig is aws.lambda.*.
type LambdaConfig struct {
	FunctionName   string `koanf:"functionname" doc:"function name, ARN or alias; setting it enables the awslambda output"`
	InvocationType string `koanf:"invocationtype" doc:"RequestResponse (wait for the function, its errors fail the delivery) or Event (asynchronous)"`
	LogType        string `koanf:"logtype" doc:"Tail (log the function's log tail at debug level) or None; RequestResponse only"`
	Endpoint       string `koanf:"endpoint" doc:"Lambda endpoint URL (aws-lambda-rie, VPC endpoint); default aws.endpoint, else AWS"`
}

// S3Config is aws.s3.*.
type S3Config struct {
	Bucket          string `koanf:"bucket" doc:"bucket name; setting it enables the awss3 output (one object per event)"`
	Prefix          string `koanf:"prefix" doc:"key prefix: objects are PREFIX/YYYY-MM-DD/<RFC 3339 time>.json"`
	Endpoint        string `koanf:"endpoint" doc:"S3 endpoint URL (an S3-compatible store, a VPC endpoint); default aws.endpoint, else AWS"`
	ObjectCannedACL string `koanf:"objectcannedacl" doc:"canned ACL (x-amz-acl) of each object, e.g. bucket-owner-full-control or private; empty: none sent"`
	ForcePathStyle  bool   `koanf:"forcepathstyle" doc:"address the bucket as ENDPOINT/BUCKET instead of BUCKET.ENDPOINT (S3-compatible stores without virtual-host buckets; saker's own key)"`
}

// CloudWatchLogsConfig is aws.cloudwatchlogs.*.
type CloudWatchLogsConfig struct {
	LogGroup  string `koanf:"loggroup" doc:"log group name; setting it enables the awscloudwatchlogs output (the group must exist)"`
	LogStream string `koanf:"logstream" doc:"log stream name; empty: falcosidekick-logstream; a missing stream is created"`
	Endpoint  string `koanf:"endpoint" doc:"CloudWatch Logs endpoint URL (VPC endpoint, emulator); default aws.endpoint, else AWS"`
}

// KinesisConfig is aws.kinesis.*.
type KinesisConfig struct {
	StreamName string `koanf:"streamname" doc:"data stream name; setting it enables the awskinesis output"`
	Endpoint   string `koanf:"endpoint" doc:"Kinesis endpoint URL (VPC endpoint, emulator); default aws.endpoint, else AWS"`
}

// defaults are falcosidekick's.
func defaults() *Config {
	return &Config{CheckIdentity: true,
		Lambda: LambdaConfig{InvocationType: invokeRequestResponse, LogType: logTail},
		S3:     S3Config{Prefix: "falco", ObjectCannedACL: "bucket-owner-full-control"}}
}

const (
	invokeRequestResponse = "RequestResponse"
	invokeEvent           = "Event"
	logTail               = "Tail"
	logNone               = "None"
)

// Validate names the key at fault. The three outputs share the section, so it checks every
// key of the section, whichever outputs are enabled. It does not change c.
func (c *Config) Validate() error {
	_, err := c.parse()
	return err
}

// parse checks every key and returns a copy of c with the values normalised
// (aws.lambda.invocationtype and logtype in the SDK's spelling); the outputs build from it.
func (c Config) parse() (*Config, error) {
	if err := c.normalise(); err != nil {
		return nil, err
	}
	return &c, nil
}

// normalise checks and normalises the receiver, a copy owned by parse.
func (c *Config) normalise() error {
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		return fmt.Errorf("aws.accesskeyid and aws.secretaccesskey must be set together (one of them is empty)")
	}
	if c.RoleARN != "" && !strings.HasPrefix(c.RoleARN, "arn:") {
		return fmt.Errorf("aws.rolearn must be an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME), got %q", c.RoleARN)
	}
	if c.ExternalID != "" && c.RoleARN == "" {
		return fmt.Errorf("aws.externalid is only used with aws.rolearn, which is empty")
	}
	for _, ep := range []struct{ key, val string }{{"aws.endpoint", c.Endpoint}, {"aws.sts.endpoint", c.STS.Endpoint},
		{"aws.sqs.endpoint", c.SQS.Endpoint}, {"aws.sns.endpoint", c.SNS.Endpoint}, {"aws.lambda.endpoint", c.Lambda.Endpoint},
		{"aws.s3.endpoint", c.S3.Endpoint}, {"aws.cloudwatchlogs.endpoint", c.CloudWatchLogs.Endpoint},
		{"aws.kinesis.endpoint", c.Kinesis.Endpoint}, {"aws.securitylake.endpoint", c.SecurityLake.Endpoint},
		{"aws.sqs.url", c.SQS.URL}} {
		if ep.val == "" {
			continue
		}
		if err := outputs.ValidateURL(ep.key, ep.val); err != nil {
			return err
		}
	}
	if c.SNS.TopicArn != "" && !strings.HasPrefix(c.SNS.TopicArn, "arn:") {
		return fmt.Errorf("aws.sns.topicarn must be a topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME), got %q", c.SNS.TopicArn)
	}
	if err := checkS3("aws.s3", c.S3.Bucket, c.S3.Prefix, &c.S3.ObjectCannedACL); err != nil {
		return err
	}
	if err := checkLogNames(c.CloudWatchLogs.LogGroup, c.CloudWatchLogs.LogStream); err != nil {
		return err
	}
	if err := checkStreamName("aws.kinesis.streamname", c.Kinesis.StreamName); err != nil {
		return err
	}
	if err := checkSecurityLake(&c.SecurityLake); err != nil {
		return err
	}
	switch {
	case strings.EqualFold(c.Lambda.InvocationType, invokeRequestResponse):
		c.Lambda.InvocationType = invokeRequestResponse
	case strings.EqualFold(c.Lambda.InvocationType, invokeEvent):
		c.Lambda.InvocationType = invokeEvent
	default:
		return fmt.Errorf("aws.lambda.invocationtype must be RequestResponse or Event, got %q", c.Lambda.InvocationType)
	}
	switch {
	case strings.EqualFold(c.Lambda.LogType, logTail):
		c.Lambda.LogType = logTail
	case strings.EqualFold(c.Lambda.LogType, logNone), c.Lambda.LogType == "":
		c.Lambda.LogType = logNone
	default:
		return fmt.Errorf("aws.lambda.logtype must be Tail or None, got %q", c.Lambda.LogType)
	}
	return nil
}

// The outputs' names are falcosidekick's metric destinations, so dashboards keep working.
const (
	nameSQS            = "awssqs"
	nameSNS            = "awssns"
	nameLambda         = "awslambda"
	nameS3             = "awss3"
	nameCloudWatchLogs = "awscloudwatchlogs"
	nameKinesis        = "awskinesis"
)

func init() {
	s := outputs.Define(nameSQS, "aws", defaults,
		func(c *Config) bool { return c.SQS.URL != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return NewSQS(c, env) })
	s.PolicyPath = "aws.sqs"
	s.Doc = "send events to an Amazon SQS queue (SendMessageBatch, 10 per call)"
	// SQS takes 10 messages and 256 KiB per SendMessageBatch call.
	s.Batch = delivery.BatchPolicy{MaxEvents: sqsMaxBatch, MaxBytes: sqsMaxBatchBytes, FlushInterval: 200 * time.Millisecond}
	outputs.Register(s)

	s = outputs.Define(nameSNS, "aws", defaults,
		func(c *Config) bool { return c.SNS.TopicArn != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return NewSNS(c, env) })
	s.PolicyPath = "aws.sns"
	s.Doc = "publish events to an Amazon SNS topic"
	outputs.Register(s)

	s = outputs.Define(nameLambda, "aws", defaults,
		func(c *Config) bool { return c.Lambda.FunctionName != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return NewLambda(c, env) })
	s.PolicyPath = "aws.lambda"
	s.Doc = "invoke an AWS Lambda function with the event's Falco JSON"
	outputs.Register(s)

	s = outputs.Define(nameS3, "aws", defaults,
		func(c *Config) bool { return c.S3.Bucket != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return NewS3(c, env) })
	s.PolicyPath = "aws.s3"
	s.Doc = "write each event's Falco JSON as an object to an Amazon S3 bucket"
	outputs.Register(s)

	s = outputs.Define(nameCloudWatchLogs, "aws", defaults,
		func(c *Config) bool { return c.CloudWatchLogs.LogGroup != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return NewCloudWatchLogs(c, env) })
	s.PolicyPath = "aws.cloudwatchlogs"
	s.Doc = "send events to an Amazon CloudWatch Logs stream (PutLogEvents batches)"
	s.Batch = delivery.BatchPolicy{MaxEvents: 1000, MaxBytes: cwlMaxBatchBytes, FlushInterval: time.Second}
	outputs.Register(s)

	s = outputs.Define(nameKinesis, "aws", defaults,
		func(c *Config) bool { return c.Kinesis.StreamName != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return NewKinesis(c, env) })
	s.PolicyPath = "aws.kinesis"
	s.Doc = "put events into an Amazon Kinesis data stream (PutRecords batches)"
	s.Batch = kinesisBatch
	outputs.Register(s)

	s = outputs.Define(nameSecurityLake, "aws", defaults,
		func(c *Config) bool { return c.SecurityLake.Bucket != "" },
		func(c *Config, env outputs.Env) (delivery.Output, error) { return NewSecurityLake(c, env) })
	s.PolicyPath = "aws.securitylake"
	s.Doc = "write batches of events as OCSF Parquet files to an Amazon Security Lake custom source"
	// falcosidekick's defaults: 1000 events per file, a file every 5 minutes at least.
	s.Batch = delivery.BatchPolicy{MaxEvents: 1000, MaxBytes: 64 << 20, FlushInterval: lakeMinInterval * time.Minute}
	s.Aliases = securityLakeAliases
	outputs.Register(s)
}

// sessionKey is what makes two outputs' SDK configurations the same.
type sessionKey struct {
	region, accessKeyID, secretAccessKey, roleARN, externalID, endpoint, stsEndpoint string
	checkIdentity                                                                    bool
}

// sessions caches one SDK configuration per distinct shared settings, so awssqs, awssns and
// awslambda share credentials (one AssumeRole, one refresh) and check the identity once.
var sessions = struct {
	mu sync.Mutex
	m  map[sessionKey]sdkaws.Config
}{m: map[sessionKey]sdkaws.Config{}}

// loadTimeout bounds the configuration load (region from instance metadata, identity check).
const loadTimeout = 20 * time.Second

// sdkConfig returns the SDK configuration for c, loading it (and checking the identity when
// aws.checkidentity is true) the first time. Failures are not cached: a later build retries.
func sdkConfig(c *Config, log *slog.Logger) (sdkaws.Config, error) {
	key := sessionKey{c.Region, c.AccessKeyID, c.SecretAccessKey, c.RoleARN, c.ExternalID, c.Endpoint, c.STS.Endpoint, c.CheckIdentity}
	sessions.mu.Lock()
	defer sessions.mu.Unlock()
	if cfg, ok := sessions.m[key]; ok {
		return cfg, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	cfg, err := loadSDKConfig(ctx, c)
	if err != nil {
		return sdkaws.Config{}, err
	}
	if c.CheckIdentity {
		if err := checkIdentity(ctx, cfg, c, log); err != nil {
			return sdkaws.Config{}, err
		}
	}
	sessions.m[key] = cfg
	return cfg, nil
}

func loadSDKConfig(ctx context.Context, c *Config) (sdkaws.Config, error) {
	opts := []func(*config.LoadOptions) error{
		// The delivery engine retries; an SDK retry inside an attempt would only eat its deadline.
		config.WithRetryer(func() sdkaws.Retryer { return sdkaws.NopRetryer{} }),
		// As falcosidekick: without a configured region, ask the instance metadata.
		config.WithEC2IMDSRegion(),
	}
	if c.Region != "" {
		opts = append(opts, config.WithRegion(c.Region))
	}
	if c.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, "")))
	}
	if c.Endpoint != "" {
		opts = append(opts, config.WithBaseEndpoint(c.Endpoint))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return sdkaws.Config{}, fmt.Errorf("aws: load the SDK configuration: %w", err)
	}
	if cfg.Region == "" {
		return sdkaws.Config{}, fmt.Errorf("aws.region is not set, and no region was found in AWS_DEFAULT_REGION, the shared config file or the EC2 instance metadata")
	}
	if c.RoleARN != "" {
		// Unlike falcosidekick, which assumed the role once at start (its credentials expired
		// an hour later), the provider refreshes them before they expire.
		session := "saker-" + randomHex(8)
		provider := stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg, stsOptions(c)), c.RoleARN,
			func(o *stscreds.AssumeRoleOptions) {
				o.RoleSessionName = session
				if c.ExternalID != "" {
					o.ExternalID = sdkaws.String(c.ExternalID)
				}
			})
		cfg.Credentials = sdkaws.NewCredentialsCache(provider)
	}
	return cfg, nil
}

// stsOptions points STS at aws.sts.endpoint when set (aws.endpoint is already the base).
func stsOptions(c *Config) func(*sts.Options) {
	return func(o *sts.Options) {
		if c.STS.Endpoint != "" {
			o.BaseEndpoint = sdkaws.String(c.STS.Endpoint)
		}
	}
}

// checkIdentity is falcosidekick's aws.checkidentity: prove the credentials work before the
// first alert needs them. It runs once at start-up, so it may use the SDK's standard retries.
func checkIdentity(ctx context.Context, cfg sdkaws.Config, c *Config, log *slog.Logger) error {
	client := sts.NewFromConfig(cfg, stsOptions(c), func(o *sts.Options) { o.Retryer = retry.NewStandard() })
	out, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		where := "AWS STS"
		if ep := firstNonEmpty(c.STS.Endpoint, c.Endpoint); ep != "" {
			where = httpout.Redact(ep)
		}
		return fmt.Errorf("aws.checkidentity: STS GetCallerIdentity at %s failed, so the credentials cannot be trusted "+
			"(emulators without STS: set aws.checkidentity=false, or point aws.sts.endpoint at one that serves it): %w", where, err)
	}
	log.Info("aws identity checked", "arn", sdkaws.ToString(out.Arn), "account", sdkaws.ToString(out.Account))
	return nil
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
