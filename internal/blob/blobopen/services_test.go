package blobopen_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/blobopen"
	"github.com/haven-dr/haven/internal/testenv"
)

// TestAzureCredentials opens Azurite through URLs with each way of passing
// credentials: shared key, connection string, SAS token.
func TestAzureCredentials(t *testing.T) {
	endpoint, account, key := testenv.Azurite(t)
	query := "/vault?endpoint=" + url.QueryEscape(endpoint) + "&account=" + account
	connStr := fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;", account, key, endpoint)
	cases := map[string]map[string]string{
		"key":     {"AZURE_STORAGE_KEY": key},
		"connstr": {"AZURE_STORAGE_CONNECTION_STRING": connStr},
		"sas":     {"AZURE_STORAGE_SAS_TOKEN": accountSAS(t, endpoint, account, key)},
	}
	for name, vars := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := blobopen.OpenEnv(context.Background(), "azblob://hvopen"+name+query, blob.DefaultLimits(), env(vars))
			if err != nil {
				t.Fatal(err)
			}
			exercise(t, b)
		})
	}
}

// accountSAS makes an account SAS token with the rights a vault needs.
func accountSAS(t *testing.T, endpoint, account, key string) string {
	t.Helper()
	cred, err := azblob.NewSharedKeyCredential(account, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := azblob.NewClientWithSharedKeyCredential(endpoint+"/", cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.ServiceClient().GetSASURL(
		sas.AccountResourceTypes{Service: true, Container: true, Object: true},
		sas.AccountPermissions{Read: true, Write: true, Delete: true, List: true, Add: true, Create: true},
		time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u.RawQuery
}

func TestS3(t *testing.T) {
	endpoint, access, secret := testenv.S3Server(t)
	raw := fmt.Sprintf("s3://hvopen/vault?endpoint=%s&insecure=true&pathstyle=true&region=us-east-1", endpoint)
	b, err := blobopen.OpenEnv(context.Background(), raw, blob.DefaultLimits(),
		env(map[string]string{"AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret}))
	if err != nil {
		t.Fatal(err)
	}
	exercise(t, b)
}
