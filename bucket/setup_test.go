package bucket

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/lifecycle"

	"mamoru/bucket/s3test"
	"mamoru/config"
)

// The device's policy is made for the server storage init talks to: on
// AWS it demands If-None-Match of every write that creates an object; MinIO
// refuses that condition, so it gets none. Neither grants what would let a
// stolen key destroy a clip.
func TestDevicePolicyForEachServer(t *testing.T) {
	aws := DevicePolicy(config.Storage{Endpoint: "s3.ap-northeast-1.amazonaws.com", Bucket: "clips", Prefix: "m"}, "shibuya", "counter-1")
	local := DevicePolicy(config.Storage{Endpoint: "127.0.0.1:9000", Bucket: "clips", Prefix: "m"}, "shibuya", "counter-1")
	if !strings.Contains(aws, `"s3:if-none-match": "false"`) || !strings.Contains(aws, `"s3:ObjectCreationOperation": "false"`) {
		t.Errorf("the AWS policy does not demand If-None-Match:\n%s", aws)
	}
	if strings.Contains(local, "if-none-match") {
		t.Errorf("the MinIO policy has a condition MinIO refuses:\n%s", local)
	}
	const healthKey = "arn:aws:s3:::clips/m/shibuya/counter-1/health.json"
	for _, p := range []string{aws, local} {
		var doc struct {
			Statement []struct {
				Sid       string
				Action    []string
				Resource  []string
				Condition map[string]any
			}
		}
		if err := json.Unmarshal([]byte(p), &doc); err != nil {
			t.Fatal(err)
		}
		for _, s := range doc.Statement {
			health := len(s.Resource) == 1 && s.Resource[0] == healthKey
			for _, a := range s.Action {
				// Tagging on the health report alone: AWS wants it for a
				// write with tags.
				if a != "s3:PutObject" && a != "s3:PutObjectRetention" && a != "s3:DeleteObject" && (a != "s3:PutObjectTagging" || !health) {
					t.Errorf("the device may %s on %v", a, s.Resource)
				}
			}
			// On AWS, only the health report may be written without
			// If-None-Match (or as a multipart upload's part).
			if p == aws && s.Condition == nil && slices.Contains(s.Action, "s3:PutObject") && !health {
				t.Errorf("on AWS, statement %s lets the device write %v over", s.Sid, s.Resource)
			}
		}
		if p == aws && !strings.Contains(p, `"Sid": "MamoruDeviceHealth"`) {
			t.Errorf("the AWS policy does not let the device write its health report over:\n%s", p)
		}
	}
	for _, s := range []config.Storage{{Endpoint: "s3.ap-northeast-1.amazonaws.com"}, {Endpoint: "127.0.0.1:9000"}} {
		if note := PolicyNote(s); !strings.Contains(note, "health.json") {
			t.Errorf("the note for %s does not say the device writes its health.json over: %s", s.Endpoint, note)
		}
	}
	if strings.Contains(local, "health.json") || strings.Contains(local, "PutObjectTagging") {
		t.Errorf("the MinIO policy grants something new for the health report, which its folder-wide write already covers:\n%s", local)
	}

	srv := s3test.Start(t, s3test.Options{})
	adm, err := madmin.NewWithOptions(srv.Endpoint, &madmin.Options{Creds: credentials.NewStaticV4(s3test.RootUser, s3test.RootPassword, "")})
	if err != nil {
		t.Fatal(err)
	}
	if err := adm.AddCannedPolicy(context.Background(), "aws", []byte(aws)); err == nil {
		t.Errorf("MinIO took the condition s3:if-none-match: the policy for MinIO could demand If-None-Match too")
	}
	if err := adm.AddCannedPolicy(context.Background(), "local", []byte(local)); err != nil {
		t.Errorf("MinIO refused the policy made for it: %v", err)
	}
}

// versitygw, unlike MinIO, adds object lock to a bucket made without it
// once versioning is on; its missing lifecycle is said as such.
func TestGatewayAddsObjectLock(t *testing.T) {
	gw := s3test.StartGateway(t)
	root := gw.Root()
	if err := root.MakeBucket(t.Context(), "plain", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	steps, err := SetupBucket(t.Context(), root, gw.Storage("plain"), "shop-1", config.Policy{RetentionDays: 30, ObjectLock: config.LockGovernance})
	if err == nil || !strings.Contains(err.Error(), "this server cannot expire objects") {
		t.Errorf("SetupBucket on versitygw: %v; want it to say clips will not expire", err)
	}
	if !strings.Contains(strings.Join(steps, "\n"), "object lock turned on in plain") {
		t.Errorf("steps %q; want object lock turned on", steps)
	}
	var opts minio.PutObjectOptions
	Lock{Mode: minio.Governance, Days: 30}.WriteOnce(&opts, time.Now())
	info, err := root.PutObject(t.Context(), "plain", "a/clip.mp4", strings.NewReader("clip"), 4, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := root.RemoveObject(t.Context(), "plain", "a/clip.mp4", minio.RemoveObjectOptions{VersionID: info.VersionID}); err == nil {
		t.Errorf("root deleted a locked version in a bucket whose lock was added later")
	}
}

// An older version goes a day after it became one, so an expired clip is
// deleted as the rules promise: locked, an original written over is kept
// by its lock; unlocked, the steps say an overwrite shows for a day only.
func TestSetupBucketOlderVersions(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	for _, tc := range []struct {
		bucket string
		lock   string
		days   int
		step   string
	}{
		{"locked", config.LockGovernance, 1, "older versions of any written over, expire 30 days after upload (an older version goes a day after it became one, never before its lock ends)"},
		{"unlocked", config.LockNone, 1, "expire 30 days after upload; an older version, an expired clip or an original written over, goes a day after it became one: unlocked, an overwrite can be seen by 'mamoru clips verify' for a day only"},
	} {
		steps, err := SetupBucket(t.Context(), srv.Root(), srv.Storage(tc.bucket), "shop-1", config.Policy{RetentionDays: 30, ObjectLock: tc.lock})
		if err != nil {
			t.Fatalf("SetupBucket, object lock %q: %v (did %q)", tc.lock, err, steps)
		}
		if got := strings.Join(steps, "\n"); !strings.Contains(got, tc.step) {
			t.Errorf("object lock %q: steps\n%s\ndo not say %q", tc.lock, got, tc.step)
		}
		cfg, err := srv.Root().GetBucketLifecycle(t.Context(), tc.bucket)
		if err != nil || len(cfg.Rules) != 1 {
			t.Fatalf("object lock %q: lifecycle %+v, %v; want one rule", tc.lock, cfg, err)
		}
		if got := int(cfg.Rules[0].NoncurrentVersionExpiration.NoncurrentDays); got != tc.days {
			t.Errorf("object lock %q: older versions expire after %d days, want %d", tc.lock, got, tc.days)
		}
	}
}

// Without a retention rule, the older versions of health.json, written
// over every minute, still go a day on: a rule for them alone, by their
// tag, below the prefix. MinIO takes it.
func TestSetupBucketHealthVersions(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	for _, tc := range []struct{ bucket, prefix string }{{"with-prefix", "m"}, {"without-prefix", ""}} {
		st := srv.Storage(tc.bucket)
		st.Prefix = tc.prefix
		steps, err := SetupBucket(t.Context(), srv.Root(), st, "shop-1", config.Policy{ObjectLock: config.LockNone})
		if err != nil {
			t.Fatalf("SetupBucket: %v (did %q)", err, steps)
		}
		if got := strings.Join(steps, "\n"); !strings.Contains(got, "older versions of each device's health.json, written over every minute, go a day after") {
			t.Errorf("steps do not say what becomes of health.json's versions:\n%s", got)
		}
		cfg, err := srv.Root().GetBucketLifecycle(t.Context(), tc.bucket)
		if err != nil || len(cfg.Rules) != 1 {
			t.Fatalf("prefix %q: lifecycle %+v, %v; want one rule", tc.prefix, cfg, err)
		}
		r := cfg.Rules[0]
		tags, prefix := r.RuleFilter.And.Tags, r.RuleFilter.And.Prefix
		if tc.prefix == "" {
			tags, prefix = []lifecycle.Tag{r.RuleFilter.Tag}, r.RuleFilter.Prefix
		}
		if r.NoncurrentVersionExpiration.NoncurrentDays != 1 || !r.Expiration.IsNull() || len(tags) != 1 ||
			tags[0].Key != HealthTag.Key || tags[0].Value != HealthTag.Value || prefix != strings.TrimPrefix(tc.prefix+"/", "/") {
			t.Errorf("prefix %q: rule %+v; want older versions tagged %v below the prefix to go after a day, and nothing else", tc.prefix, r, HealthTag)
		}
	}

	// A server with no lifecycle rules keeps them, and storage init says so.
	gw := s3test.StartGateway(t)
	if err := gw.Root().MakeBucket(t.Context(), "plain", minio.MakeBucketOptions{}); err != nil {
		t.Fatal(err)
	}
	steps, err := SetupBucket(t.Context(), gw.Root(), gw.Storage("plain"), "shop-1", config.Policy{ObjectLock: config.LockNone})
	if got := strings.Join(steps, "\n"); err != nil || !strings.Contains(got, "health.json leaves an older version every minute, 1440 a day") || strings.Contains(got, "go a day after") {
		t.Errorf("SetupBucket on versitygw, clips kept: %v, steps\n%s\nwant them to say health.json's versions stay", err, strings.Join(steps, "\n"))
	}
}

// Each store's clips expire by a rule of its own, merged with the bucket's
// other rules; the chain of custody is no store's, and never expires. An
// older mamoru's rule for the whole prefix is replaced by one per store,
// each keeping its days; a store that keeps its clips has none, and the
// rule for health.json's versions stays for it; running init again
// changes nothing.
func TestSetupBucketRetentionPerStore(t *testing.T) {
	srv := s3test.Start(t, s3test.Options{})
	root := srv.Root()
	st := srv.Storage("clips")
	st.Prefix = "mamoru"
	srv.Bucket("clips")
	// What an older mamoru left: its rule for the whole prefix, and
	// someone else's rule, with a store that has uploaded already.
	old := lifecycle.NewConfiguration()
	old.Rules = []lifecycle.Rule{{ID: "mamoru-retention", Status: "Enabled", Expiration: lifecycle.Expiration{Days: 90},
		NoncurrentVersionExpiration: lifecycle.NoncurrentVersionExpiration{NoncurrentDays: 1}, RuleFilter: lifecycle.Filter{Prefix: "mamoru/"}},
		{ID: "theirs", Status: "Enabled", Expiration: lifecycle.Expiration{Days: 7}, RuleFilter: lifecycle.Filter{Prefix: "tmp/"}}}
	if err := root.EnableVersioning(t.Context(), "clips"); err != nil {
		t.Fatal(err)
	}
	if err := root.SetBucketLifecycle(t.Context(), "clips", old); err != nil {
		t.Fatal(err)
	}
	putObject(t, root, "mamoru/ikebukuro/counter-1/health.json", []byte("{}"))
	putObject(t, root, "mamoru/.custody/ikebukuro/counter-1/20261123-154502-000001/2026-11-23T07:00:00Z-view-1.json", []byte("{}"))

	rules := func() map[string]lifecycle.Rule {
		t.Helper()
		cfg, err := root.GetBucketLifecycle(t.Context(), "clips")
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]lifecycle.Rule{}
		for _, r := range cfg.Rules {
			m[r.ID] = r
		}
		return m
	}
	var steps [][]string
	for _, run := range []struct {
		store string
		days  int
	}{{"shibuya", 30}, {"shinjuku", 60}, {"harajuku", 0}, {"shibuya", 30}} {
		s, err := SetupBucket(t.Context(), root, st, run.store, config.Policy{RetentionDays: run.days, ObjectLock: config.LockNone})
		if err != nil {
			t.Fatalf("SetupBucket for %s: %v (did %q)", run.store, err, s)
		}
		steps = append(steps, s)
	}
	if got := strings.Join(steps[0], "\n"); !strings.Contains(got, `removed the lifecycle rule "mamoru-retention", which expired everything under "mamoru/", the chain of custody (mamoru/.custody/) included`) ||
		!strings.Contains(got, "stores given the old rule's days: ikebukuro") || !strings.Contains(got, `clips under "mamoru/shibuya/"`) {
		t.Errorf("the first init's steps do not say the old rule went, and which stores kept its days:\n%s", got)
	}
	if got := strings.Join(steps[3], "\n"); strings.Contains(got, "removed the lifecycle rule") {
		t.Errorf("init run again removed a rule:\n%s", got)
	}

	got := rules()
	for id, want := range map[string]struct {
		prefix string
		days   int
	}{
		"mamoru-retention-shibuya":   {"mamoru/shibuya/", 30},
		"mamoru-retention-shinjuku":  {"mamoru/shinjuku/", 60},
		"mamoru-retention-ikebukuro": {"mamoru/ikebukuro/", 90},
		"theirs":                     {"tmp/", 7},
	} {
		r, ok := got[id]
		if !ok || r.RuleFilter.Prefix != want.prefix || int(r.Expiration.Days) != want.days {
			t.Errorf("rule %s: %+v (there: %v); want prefix %q, %d days", id, r, ok, want.prefix, want.days)
		}
	}
	// A store whose clips are kept needs the health rule; another store's
	// init keeps it.
	if _, ok := got[healthRule]; !ok || len(got) != 5 {
		t.Errorf("the bucket has %d rules, want 5, %s among them: %+v", len(got), healthRule, got)
	}
	const record = "mamoru/.custody/shibuya/counter-1/20261123-154502-000001/2026-11-23T07:00:00Z-view-1.json"
	for id, r := range got {
		// A rule by tag covers no record: none is tagged.
		tagged := !r.RuleFilter.Tag.IsEmpty() || len(r.RuleFilter.And.Tags) > 0
		if !tagged && strings.HasPrefix(record, r.RuleFilter.Prefix) {
			t.Errorf("rule %s (prefix %q) expires the custody record %s", id, r.RuleFilter.Prefix, record)
		}
	}

	if _, err := SetupBucket(t.Context(), root, st, "../x", config.Policy{RetentionDays: 30, ObjectLock: config.LockNone}); err == nil {
		t.Errorf("SetupBucket took a store that is no store's name")
	}
}
