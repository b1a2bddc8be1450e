package aws

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go"

	"github.com/saker-dev/saker/engine/delivery"
	"github.com/saker-dev/saker/engine/event"
	"github.com/saker-dev/saker/outputs"
)

// SecurityLakeConfig is aws.securitylake.*. falcosidekick's interval (minutes) and
// batchsize are aliases of the engine's batch keys (see securityLakeAliases).
type SecurityLakeConfig struct {
	Bucket    string `koanf:"bucket" doc:"bucket of the Security Lake custom source; setting it enables the awssecuritylake output"`
	Region    string `koanf:"region" doc:"region of the custom source, in the object keys (region=...)"`
	Prefix    string `koanf:"prefix" doc:"key prefix of the custom source (e.g. ext/falco)"`
	AccountID string `koanf:"accountid" doc:"account id of the custom source, in the object keys (accountId=...)"`
	Endpoint  string `koanf:"endpoint" doc:"S3 endpoint URL for the bucket; default aws.s3.endpoint, aws.endpoint, else AWS (saker's own key)"`
}

const nameSecurityLake = "awssecuritylake"

// Security Lake's custom source limits on falcosidekick's interval, in minutes.
const (
	lakeMinInterval = 5
	lakeMaxInterval = 60
)

// securityLakeAliases map falcosidekick's aws.securitylake.interval (minutes between two
// files, clamped to 5..60 as falcosidekick did) and batchsize (events per file) onto the
// engine's batch keys.
var securityLakeAliases = []outputs.Alias{
	{Path: "aws.securitylake.interval", Type: "int",
		Doc: "minutes between two files, 5 to 60 (values outside are clamped, as falcosidekick did): `aws.securitylake.batch.flushinterval`",
		Expand: func(v string) (map[string]any, error) {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return nil, fmt.Errorf("invalid value %q: want a number of minutes", v)
			}
			n = min(max(n, lakeMinInterval), lakeMaxInterval)
			return map[string]any{"aws.securitylake.batch.flushinterval": fmt.Sprintf("%dm", n)}, nil
		}},
	{Path: "aws.securitylake.batchsize", Type: "int",
		Doc: "events per Parquet file at most: `aws.securitylake.batch.maxevents`",
		Expand: func(v string) (map[string]any, error) {
			return map[string]any{"aws.securitylake.batch.maxevents": strings.TrimSpace(v)}, nil
		}},
}

var accountIDRE = regexp.MustCompile(`^[0-9]{12}$`)

// checkSecurityLake validates aws.securitylake.* when the output is enabled: falcosidekick
// called region, prefix and accountid mandatory, and the object keys are meaningless to
// Security Lake without them.
func checkSecurityLake(c *SecurityLakeConfig) error {
	if c.Bucket == "" {
		return nil
	}
	if err := checkS3("aws.securitylake", c.Bucket, c.Prefix, nil); err != nil {
		return err
	}
	switch {
	case c.Region == "":
		return fmt.Errorf("aws.securitylake.region is required with aws.securitylake.bucket")
	case strings.Trim(c.Prefix, "/") == "":
		return fmt.Errorf("aws.securitylake.prefix is required with aws.securitylake.bucket (the custom source's location, e.g. ext/falco)")
	case !accountIDRE.MatchString(c.AccountID):
		return fmt.Errorf("aws.securitylake.accountid must be a 12-digit AWS account id, got %q", c.AccountID)
	}
	return nil
}

// SecurityLake is the awssecuritylake output: each batch of events (at most batchsize, at
// least every interval) becomes one Parquet file of OCSF Security Finding records, written
// to the custom source's location PREFIX/region=R/accountId=A/eventDay=YYYYMMDD/UUID.parquet.
type SecurityLake struct {
	client              *s3.Client
	bucket, keyTemplate string
	log                 *slog.Logger
}

// NewSecurityLake builds the output from the aws section.
func NewSecurityLake(c *Config, env outputs.Env) (*SecurityLake, error) {
	cfg, err := c.parse()
	if err != nil {
		return nil, err
	}
	l := cfg.SecurityLake
	if l.Bucket == "" {
		return nil, fmt.Errorf("aws.securitylake.bucket is empty")
	}
	base, err := sdkConfig(cfg, env.Logger())
	if err != nil {
		return nil, err
	}
	endpoint := firstNonEmpty(l.Endpoint, cfg.S3.Endpoint)
	client := s3.NewFromConfig(base, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = sdkaws.String(endpoint)
		}
		o.UsePathStyle = cfg.S3.ForcePathStyle
		o.RequestChecksumCalculation = sdkaws.RequestChecksumCalculationWhenRequired
	})
	tmpl := fmt.Sprintf("%s/region=%s/accountId=%s/eventDay=", strings.Trim(l.Prefix, "/"), l.Region, l.AccountID)
	return &SecurityLake{client: client, bucket: l.Bucket, keyTemplate: tmpl, log: env.Logger()}, nil
}

// Name implements delivery.Output.
func (o *SecurityLake) Name() string { return nameSecurityLake }

// Send writes a file of one event (batching turned off).
func (o *SecurityLake) Send(ctx context.Context, ev *event.Event) error {
	return o.SendBatch(ctx, []*event.Event{ev})
}

// SendBatch writes the events as one Parquet file. The file is all or nothing: any failure
// fails the whole batch, which the engine retries (a new file name each time).
func (o *SecurityLake) SendBatch(ctx context.Context, evs []*event.Event) error {
	body, err := parquetFile(evs)
	if err != nil {
		return delivery.Permanent(fmt.Errorf("securitylake: encode %d events as Parquet: %w", len(evs), err))
	}
	key := o.keyTemplate + time.Now().UTC().Format("20060102") + "/" + uuid.NewString() + ".parquet"
	_, err = o.client.PutObject(ctx, &s3.PutObjectInput{Bucket: sdkaws.String(o.bucket), Key: sdkaws.String(key),
		Body: bytes.NewReader(body), ContentType: sdkaws.String("application/vnd.apache.parquet"),
		ACL: types.ObjectCannedACLBucketOwnerFullControl})
	if err != nil {
		return classify(fmt.Sprintf("securitylake PutObject s3://%s/%s", o.bucket, key), err)
	}
	o.log.Debug("parquet file written", "bucket", o.bucket, "key", key, "events", len(evs))
	return nil
}

// parquetFile encodes the events as OCSF records in a zstd-compressed Parquet file.
func parquetFile(evs []*event.Event) ([]byte, error) {
	rows := make([]ocsfFinding, len(evs))
	for i, ev := range evs {
		rows[i] = newOCSFFinding(ev)
	}
	var buf bytes.Buffer
	if err := parquet.Write(&buf, rows, parquet.Compression(&parquet.Zstd)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ocsfFinding is an OCSF Security Finding (class 2001) as falcosidekick wrote it, column for
// column (see docs/outputs/awssecuritylake.md for the one name corrected).
type ocsfFinding struct {
	ActivityID   int32            `parquet:"activity_id"`
	ActivityName string           `parquet:"activity_name"`
	CategoryName string           `parquet:"category_name"`
	CategoryUID  int32            `parquet:"category_uid"`
	ClassName    string           `parquet:"class_name"`
	ClassUID     int32            `parquet:"class_uid"`
	Finding      ocsfFindingInfo  `parquet:"finding"`
	Message      string           `parquet:"message"`
	Metadata     ocsfMetadata     `parquet:"metadata"`
	Observables  []ocsfObservable `parquet:"observables"`
	RawData      string           `parquet:"raw_data"`
	Severity     string           `parquet:"severity"`
	SeverityID   int32            `parquet:"severity_id"`
	State        string           `parquet:"state"`
	StateID      int32            `parquet:"state_id"`
	Status       string           `parquet:"status"`
	Time         int64            `parquet:"time"`
	TypeName     string           `parquet:"type_name"`
	TypeUID      int32            `parquet:"type_uid"`
}

type ocsfFindingInfo struct {
	CreatedTime int64    `parquet:"created_time"`
	Desc        string   `parquet:"desc"`
	Title       string   `parquet:"title"`
	Types       []string `parquet:"types"`
	UID         string   `parquet:"uid"`
}

type ocsfMetadata struct {
	Version string      `parquet:"version"`
	Product ocsfProduct `parquet:"product"`
	Labels  []string    `parquet:"labels"`
}

type ocsfProduct struct {
	VendorName string `parquet:"vendor_name"`
	Name       string `parquet:"name"`
}

type ocsfObservable struct {
	Name   string `parquet:"name"`
	Type   string `parquet:"type"`
	TypeID int32  `parquet:"type_id"`
	Value  string `parquet:"value"`
}

// newOCSFFinding maps an event as falcosidekick did.
func newOCSFFinding(ev *event.Event) ocsfFinding {
	sevID, sev := ocsfSeverity(ev.Priority)
	ms := ev.Time.UnixMilli()
	return ocsfFinding{
		ActivityID: 1, ActivityName: "Generate", CategoryUID: 2, CategoryName: "Findings",
		ClassName: "Security Finding", ClassUID: 2001, TypeUID: 200101, TypeName: "Security Finding: Generate",
		Metadata: ocsfMetadata{Version: "0.1.0", Labels: ev.Tags,
			Product: ocsfProduct{Name: "Falco", VendorName: "Falcosecurity"}},
		RawData: string(ev.JSON()), State: "New", StateID: 1,
		Finding: ocsfFindingInfo{CreatedTime: ms, Desc: ev.Output, Title: ev.Rule, Types: []string{ev.Source}, UID: ev.UUID},
		Message: ev.Rule, Observables: ocsfObservables(ev), Time: ms, Status: ev.Priority.String(),
		SeverityID: sevID, Severity: sev,
	}
}

// ocsfObservables are the hostname and the string and number output fields, sorted by name.
func ocsfObservables(ev *event.Event) []ocsfObservable {
	obs := []ocsfObservable{}
	if ev.Hostname != "" {
		obs = append(obs, ocsfObservable{Name: "hostname", Type: "Other", Value: ev.Hostname})
	}
	names := make([]string, 0, len(ev.OutputFields))
	for k := range ev.OutputFields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		var v string
		switch x := ev.OutputFields[k].(type) {
		case string:
			v = x
		case json.Number:
			v = x.String()
		case float64, int, int64:
			v = fmt.Sprint(x)
		default:
			continue
		}
		obs = append(obs, ocsfObservable{Name: k, Type: "Other", Value: v})
	}
	return obs
}

// ocsfSeverity is falcosidekick's mapping of Falco priorities to OCSF severities.
func ocsfSeverity(p event.Priority) (int32, string) {
	switch p {
	case event.Debug, event.Informational:
		return 1, "Informational"
	case event.Notice:
		return 2, "Low"
	case event.Warning:
		return 3, "Medium"
	case event.Error:
		return 4, "High"
	case event.Critical:
		return 5, "Critical"
	case event.Alert, event.Emergency:
		return 6, "Fatal"
	default:
		return 0, "Unknown"
	}
}
