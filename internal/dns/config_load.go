package dns

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ErrConfig is wrapped by every configuration problem.
var ErrConfig = errors.New("invalid config")

// ConfigError names the line and the field of one configuration problem.
type ConfigError struct {
	Line  int
	Field string // dotted path, e.g. profiles[0].endpoints[1].target
	Msg   string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Msg)
}

func (e *ConfigError) Unwrap() error { return ErrConfig }

// pos remembers where a mapping and each of its keys' values start.
type pos struct {
	line   int
	fields map[string]int
}

// lineOf returns the line of a field's value, or the mapping's line.
func (p pos) lineOf(field string) int {
	if l, ok := p.fields[field]; ok {
		return l
	}
	return p.line
}

// LoadConfig reads and validates a configuration file. Relative paths inside
// it (geo_file) are resolved against the file's directory.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.dir, c.file = dirOf(path), path
	if _, err := compile(c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes YAML strictly (unknown fields are errors) without the
// semantic checks that compile does.
func ParseConfig(b []byte) (*Config, error) {
	var c Config
	if err := yaml.Unmarshal(b, &c); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return &c, nil
}

// decodeMapping decodes n into out (a pointer to a method-less copy of the
// struct), rejecting unknown keys and recording where each key's value is.
func decodeMapping(n *yaml.Node, out any, p *pos, what string) error {
	if n.Kind != yaml.MappingNode {
		return &ConfigError{Line: n.Line, Field: what, Msg: "must be a mapping"}
	}
	known := yamlKeys(reflect.TypeOf(out).Elem())
	p.line, p.fields = n.Line, map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !known[k.Value] {
			return &ConfigError{Line: k.Line, Field: what + "." + k.Value, Msg: "unknown field"}
		}
		p.fields[k.Value] = n.Content[i+1].Line
	}
	return n.Decode(out)
}

func yamlKeys(t reflect.Type) map[string]bool {
	m := map[string]bool{}
	for i := range t.NumField() {
		if tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]; tag != "" && tag != "-" {
			m[tag] = true
		}
	}
	return m
}

func (c *Config) UnmarshalYAML(n *yaml.Node) error {
	type plain Config
	return decodeMapping(n, (*plain)(c), &c.at, "config")
}

func (r *RateLimit) UnmarshalYAML(n *yaml.Node) error {
	type plain RateLimit
	return decodeMapping(n, (*plain)(r), &r.at, "rate_limit")
}

func (z *Zone) UnmarshalYAML(n *yaml.Node) error {
	type plain Zone
	return decodeMapping(n, (*plain)(z), &z.at, "zone")
}

func (r *Record) UnmarshalYAML(n *yaml.Node) error {
	type plain Record
	return decodeMapping(n, (*plain)(r), &r.at, "record")
}

func (p *Profile) UnmarshalYAML(n *yaml.Node) error {
	type plain Profile
	return decodeMapping(n, (*plain)(p), &p.at, "profile")
}

func (m *Monitor) UnmarshalYAML(n *yaml.Node) error {
	type plain Monitor
	return decodeMapping(n, (*plain)(m), &m.at, "monitor")
}

func (e *Endpoint) UnmarshalYAML(n *yaml.Node) error {
	type plain Endpoint
	return decodeMapping(n, (*plain)(e), &e.at, "endpoint")
}

// UnmarshalYAML accepts "1s", "500ms" or a plain number of seconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &ConfigError{Line: n.Line, Field: "duration", Msg: "must be a duration like 10s"}
	}
	if s, err := strconv.ParseFloat(n.Value, 64); err == nil {
		*d = Duration(s * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return &ConfigError{Line: n.Line, Field: "duration", Msg: fmt.Sprintf("%q is not a duration like 10s", n.Value)}
	}
	*d = Duration(v)
	return nil
}
