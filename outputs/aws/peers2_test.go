package aws

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kinesistypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/saker-dev/saker/internal/testpeers"
)

// The versitygw root credentials of the tests: versitygw checks every request's SigV4
// signature against them.
const (
	gwAccess = "saker-test-access"
	gwSecret = "saker-test-secret-0123456789"
)

// versitygw is a running versitygw (S3 gateway, posix backend) and a client to read it.
type versitygw struct {
	*testpeers.Proc
	URL, Dir, Region string
	Port             int
	S3               *s3.Client
}

// startVersitygw runs versitygw on port (0: a free one) serving dir (empty: a new temporary
// directory) for region (empty: us-east-1).
func startVersitygw(t *testing.T, port int, dir, region string) *versitygw {
	t.Helper()
	bin := testpeers.Bin(t, "versitygw")
	if port == 0 {
		port = testpeers.FreePort(t)
	}
	if dir == "" {
		dir = t.TempDir()
	}
	if region == "" {
		region = "us-east-1"
	}
	p := testpeers.Start(t, "versitygw", []string{bin, "--access", gwAccess, "--secret", gwSecret,
		"--port", fmt.Sprintf("127.0.0.1:%d", port), "--region", region, "posix", dir}, nil,
		func() bool { return testpeers.PortOpen(port) }, 20*time.Second)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	cfg := sdkaws.Config{Region: region, BaseEndpoint: sdkaws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider(gwAccess, gwSecret, "")}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	return &versitygw{Proc: p, URL: url, Dir: dir, Region: region, Port: port, S3: client}
}

func (g *versitygw) createBucket(t *testing.T, name string) {
	t.Helper()
	if _, err := g.S3.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: sdkaws.String(name)}); err != nil {
		t.Fatalf("versitygw CreateBucket %s: %v", name, err)
	}
}

// objects returns the objects of bucket under prefix, key to body.
func (g *versitygw) objects(t *testing.T, bucket, prefix string) map[string][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := map[string][]byte{}
	p := s3.NewListObjectsV2Paginator(g.S3, &s3.ListObjectsV2Input{Bucket: sdkaws.String(bucket), Prefix: sdkaws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Logf("ListObjectsV2: %v", err)
			return out
		}
		for _, o := range page.Contents {
			got, err := g.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: sdkaws.String(bucket), Key: o.Key})
			if err != nil {
				t.Fatalf("GetObject %s: %v", sdkaws.ToString(o.Key), err)
			}
			body, err := io.ReadAll(got.Body)
			got.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			out[sdkaws.ToString(o.Key)] = body
		}
	}
	return out
}

// kinesalite is a running kinesalite (Kinesis emulator) and a client to set it up and read it.
type kinesalite struct {
	*testpeers.Proc
	URL     string
	Port    int
	Kinesis *kinesis.Client
}

// startKinesalite runs kinesalite on port (0: a free one), keeping its streams in dir (empty:
// in memory) so a restarted instance still has them.
func startKinesalite(t *testing.T, port int, dir string) *kinesalite {
	t.Helper()
	testpeers.Need(t, "kinesalite")
	cli := filepath.Join(testpeers.Dir(), "kinesalite", "node_modules", "kinesalite", "cli.js")
	if _, err := os.Stat(cli); err != nil {
		t.Fatalf("kinesalite not installed at %s: run .ci/install-peers.sh", cli)
	}
	node := testpeers.Bin(t, "node")
	if port == 0 {
		port = testpeers.FreePort(t)
	}
	argv := []string{node, cli, "--port", fmt.Sprint(port), "--createStreamMs", "0", "--deleteStreamMs", "0"}
	if dir != "" {
		argv = append(argv, "--path", dir)
	}
	p := testpeers.Start(t, "kinesalite", argv, nil, func() bool { return testpeers.PortOpen(port) }, 20*time.Second)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	return &kinesalite{Proc: p, URL: url, Port: port, Kinesis: kinesis.NewFromConfig(readerConfig(url))}
}

func (k *kinesalite) createStream(t *testing.T, name string, shards int32) {
	t.Helper()
	ctx := context.Background()
	if _, err := k.Kinesis.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: sdkaws.String(name), ShardCount: sdkaws.Int32(shards)}); err != nil {
		t.Fatalf("kinesalite CreateStream %s: %v", name, err)
	}
	testpeers.Eventually(t, 10*time.Second, func() bool {
		out, err := k.Kinesis.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamName: sdkaws.String(name)})
		return err == nil && out.StreamDescription.StreamStatus == kinesistypes.StreamStatusActive
	}, "stream %s never became active", name)
}

// records reads every record of the stream from the start of each shard, in sequence order.
func (k *kinesalite) records(t *testing.T, stream string) []kinesistypes.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	desc, err := k.Kinesis.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamName: sdkaws.String(stream)})
	if err != nil {
		t.Fatalf("DescribeStream: %v", err)
	}
	var out []kinesistypes.Record
	for _, sh := range desc.StreamDescription.Shards {
		it, err := k.Kinesis.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: sdkaws.String(stream),
			ShardId: sh.ShardId, ShardIteratorType: kinesistypes.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatalf("GetShardIterator: %v", err)
		}
		iter := it.ShardIterator
		for iter != nil {
			got, err := k.Kinesis.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatalf("GetRecords: %v", err)
			}
			out = append(out, got.Records...)
			if len(got.Records) == 0 {
				break
			}
			iter = got.NextShardIterator
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return sdkaws.ToString(out[i].SequenceNumber) < sdkaws.ToString(out[j].SequenceNumber)
	})
	return out
}

// wantEachOnce checks that each of the n rules fmt.Sprintf(format, i) was seen exactly once.
func wantEachOnce(t *testing.T, seen map[string]int, format string, n int) {
	t.Helper()
	for i := range n {
		if r := fmt.Sprintf(format, i); seen[r] != 1 {
			t.Errorf("%s delivered %d times, want once", r, seen[r])
		}
	}
}
