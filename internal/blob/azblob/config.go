package azblob

import (
	"fmt"
	"net/url"
	"strings"
)

// Config says where the container is and how to authenticate. Exactly one
// of ConnectionString, Key or SAS is used, in that order of preference.
type Config struct {
	Container string
	Prefix    string // object names are stored as Prefix/name
	// Endpoint is the service URL, e.g. http://127.0.0.1:10000/devstoreaccount1
	// for Azurite; empty means https://ACCOUNT.blob.core.windows.net/.
	Endpoint         string
	Account          string
	Key              string // shared key (env AZURE_STORAGE_KEY)
	SAS              string // SAS token without "?" (env AZURE_STORAGE_SAS_TOKEN)
	ConnectionString string // env AZURE_STORAGE_CONNECTION_STRING
}

// ParseURL reads azblob://CONTAINER[/prefix]?endpoint=URL&account=NAME and
// takes secrets from the environment through getenv (never from the URL,
// so a vault URL can be printed and logged).
func ParseURL(raw string, getenv func(string) string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Config{}, fmt.Errorf("azblob: %w", err)
	}
	if u.Scheme != "azblob" || u.Host == "" {
		return Config{}, fmt.Errorf("azblob: want azblob://CONTAINER[/prefix]?endpoint=...&account=..., got %q", raw)
	}
	q := u.Query()
	cfg := Config{
		Container:        u.Host,
		Prefix:           strings.Trim(u.Path, "/"),
		Endpoint:         q.Get("endpoint"),
		Account:          q.Get("account"),
		Key:              getenv("AZURE_STORAGE_KEY"),
		SAS:              strings.TrimPrefix(getenv("AZURE_STORAGE_SAS_TOKEN"), "?"),
		ConnectionString: getenv("AZURE_STORAGE_CONNECTION_STRING"),
	}
	if cfg.Account == "" {
		cfg.Account = getenv("AZURE_STORAGE_ACCOUNT")
	}
	return cfg, cfg.check()
}

func (c Config) check() error {
	if c.ConnectionString != "" {
		return nil
	}
	if c.Account == "" && c.Endpoint == "" {
		return fmt.Errorf("azblob: no account: set account= in the URL or AZURE_STORAGE_ACCOUNT")
	}
	if c.Key == "" && c.SAS == "" {
		return fmt.Errorf("azblob: no credentials: set AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN or AZURE_STORAGE_CONNECTION_STRING")
	}
	return nil
}

// serviceURL is the endpoint, defaulting to Azure's public one.
func (c Config) serviceURL() string {
	if c.Endpoint != "" {
		return strings.TrimSuffix(c.Endpoint, "/") + "/"
	}
	return fmt.Sprintf("https://%s.blob.core.windows.net/", c.Account)
}

// location is the URL without secrets.
func (c Config) location() string {
	u := url.URL{Scheme: "azblob", Host: c.Container}
	if c.Prefix != "" {
		u.Path = "/" + c.Prefix
	}
	q := url.Values{}
	if c.Endpoint != "" {
		q.Set("endpoint", c.Endpoint)
	}
	if c.Account != "" {
		q.Set("account", c.Account)
	}
	u.RawQuery = q.Encode()
	return u.String()
}
