package s3blob

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config says where the bucket is and how to authenticate.
type Config struct {
	Bucket   string
	Prefix   string // object names are stored as Prefix/name
	Endpoint string // host:port; default s3.amazonaws.com
	Insecure bool   // plain HTTP instead of HTTPS
	Region   string // default us-east-1 (also skips a location lookup)
	// PathStyle forces http://host/bucket/key addressing (needed by most
	// self-hosted servers reached by a name; IP endpoints use it anyway).
	PathStyle    bool
	AccessKey    string // env AWS_ACCESS_KEY_ID
	SecretKey    string // env AWS_SECRET_ACCESS_KEY
	SessionToken string // env AWS_SESSION_TOKEN, optional
	// Lock, when set, is the S3 Object Lock mode (LockGovernance or
	// LockCompliance) every Put asks for, with a retain-until of now +
	// Retain. The bucket must have Object Lock enabled (see Prepare). The
	// vault's retention policy decides Retain (docs/storage.md).
	Lock   LockMode
	Retain time.Duration
}

// LockMode is an S3 Object Lock retention mode.
type LockMode string

// The two modes S3 defines: GOVERNANCE can be lifted early by a principal
// holding s3:BypassGovernanceRetention (Haven never does); COMPLIANCE by
// nobody, not even the account root, until it expires.
const (
	LockGovernance LockMode = "GOVERNANCE"
	LockCompliance LockMode = "COMPLIANCE"
)

// parseLockMode accepts the modes in any case; "" means no Object Lock.
func parseLockMode(s string) (LockMode, error) {
	switch m := LockMode(strings.ToUpper(s)); m {
	case "", LockGovernance, LockCompliance:
		return m, nil
	}
	return "", fmt.Errorf("s3blob: lock=%q: want governance or compliance", s)
}

// parseRetain reads a Go duration ("720h") or whole days ("30d").
func parseRetain(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, fmt.Errorf("s3blob: retain=%q: want a duration such as 30d or 720h", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("s3blob: retain=%q: want a duration such as 30d or 720h", s)
	}
	return d, nil
}

// ParseURL reads s3://BUCKET[/prefix]?endpoint=HOST:PORT&insecure=true&region=R
// (&pathstyle=true)(&lock=governance|compliance&retain=30d) and takes credentials from the environment through
// getenv, never from the URL.
func ParseURL(raw string, getenv func(string) string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Config{}, fmt.Errorf("s3blob: %w", err)
	}
	if u.Scheme != "s3" || u.Host == "" {
		return Config{}, fmt.Errorf("s3blob: want s3://BUCKET[/prefix]?endpoint=HOST:PORT, got %q", raw)
	}
	q := u.Query()
	cfg := Config{
		Bucket:       u.Host,
		Prefix:       strings.Trim(u.Path, "/"),
		Endpoint:     q.Get("endpoint"),
		Region:       q.Get("region"),
		AccessKey:    getenv("AWS_ACCESS_KEY_ID"),
		SecretKey:    getenv("AWS_SECRET_ACCESS_KEY"),
		SessionToken: getenv("AWS_SESSION_TOKEN"),
	}
	if cfg.Insecure, err = boolParam(q, "insecure"); err != nil {
		return Config{}, err
	}
	if cfg.PathStyle, err = boolParam(q, "pathstyle"); err != nil {
		return Config{}, err
	}
	if cfg.Lock, err = parseLockMode(q.Get("lock")); err != nil {
		return Config{}, err
	}
	if cfg.Retain, err = parseRetain(q.Get("retain")); err != nil {
		return Config{}, err
	}
	return cfg, cfg.check()
}

func boolParam(q url.Values, name string) (bool, error) {
	v := q.Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("s3blob: %s=%q: want true or false", name, v)
	}
	return b, nil
}

func (c Config) check() error {
	if c.AccessKey == "" || c.SecretKey == "" {
		return fmt.Errorf("s3blob: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	if _, err := parseLockMode(string(c.Lock)); err != nil {
		return err
	}
	if c.Retain < 0 {
		return fmt.Errorf("s3blob: negative retain %v", c.Retain)
	}
	if (c.Lock != "") != (c.Retain > 0) {
		return fmt.Errorf("s3blob: lock and retain go together: set both (lock=governance&retain=30d) or neither")
	}
	return nil
}

func (c Config) endpoint() string {
	if c.Endpoint == "" {
		return "s3.amazonaws.com"
	}
	return c.Endpoint
}

func (c Config) region() string {
	if c.Region == "" {
		return "us-east-1"
	}
	return c.Region
}

// location is the URL without secrets.
func (c Config) location() string {
	u := url.URL{Scheme: "s3", Host: c.Bucket}
	if c.Prefix != "" {
		u.Path = "/" + c.Prefix
	}
	q := url.Values{}
	if c.Endpoint != "" {
		q.Set("endpoint", c.Endpoint)
	}
	if c.Insecure {
		q.Set("insecure", "true")
	}
	if c.Region != "" {
		q.Set("region", c.Region)
	}
	if c.PathStyle {
		q.Set("pathstyle", "true")
	}
	if c.Lock != "" {
		q.Set("lock", strings.ToLower(string(c.Lock)))
		q.Set("retain", c.Retain.String())
	}
	u.RawQuery = q.Encode()
	return u.String()
}
