package azure

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/weir-gw/weir/internal/command"
	"github.com/weir-gw/weir/internal/config"
)

const sub = "/subscriptions/0000-sub"

func armOpts() *ClassifyOptions {
	return &ClassifyOptions{Kind: config.KindAzureARM, Host: "management.azure.com"}
}

func TestClassifyARM(t *testing.T) {
	tests := []struct {
		method, target, body string
		op                   string
		kind                 command.Kind
		resource             string
		risks                []command.Risk
		attrs                map[string]string
	}{
		{"GET", "/subscriptions?api-version=2022-12-01", "", "microsoft.resources/subscriptions/read", command.KindRead, "/subscriptions", nil, nil},
		{"GET", sub + "/resourcegroups?api-version=2022-09-01", "", "microsoft.resources/subscriptions/resourcegroups/read", command.KindRead, sub + "/resourcegroups",
			nil, map[string]string{"subscription": "0000-sub", "api_version": "2022-09-01"}},
		{"PUT", sub + "/resourceGroups/RG-Dev?api-version=2022-09-01", `{"location":"eastus"}`, "microsoft.resources/subscriptions/resourcegroups/write", command.KindWrite, sub + "/resourcegroups/rg-dev",
			nil, map[string]string{"resource_group": "rg-dev"}},
		{"DELETE", sub + "/resourcegroups/rg?api-version=2022-09-01", "", "microsoft.resources/subscriptions/resourcegroups/delete", command.KindWrite, sub + "/resourcegroups/rg", nil, nil},
		{"GET", sub + "/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acc?api-version=2022-09-01", "", "microsoft.storage/storageaccounts/read", command.KindRead,
			sub + "/resourcegroups/rg/providers/microsoft.storage/storageaccounts/acc", nil, map[string]string{"provider": "microsoft.storage", "type": "storageaccounts", "name": "acc"}},
		{"GET", sub + "/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts?api-version=2022-09-01", "", "microsoft.storage/storageaccounts/read", command.KindRead,
			sub + "/resourcegroups/rg/providers/microsoft.storage/storageaccounts", nil, nil},
		{"POST", sub + "/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acc/listKeys?api-version=2022-09-01", "", "microsoft.storage/storageaccounts/listkeys/action", command.KindRead,
			sub + "/resourcegroups/rg/providers/microsoft.storage/storageaccounts/acc", []command.Risk{RiskSecretRead}, map[string]string{"action": "listkeys"}},
		{"POST", sub + "/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acc/regenerateKey?api-version=2022-09-01", `{"keyName":"key1"}`, "microsoft.storage/storageaccounts/regeneratekey/action", command.KindWrite,
			sub + "/resourcegroups/rg/providers/microsoft.storage/storageaccounts/acc", []command.Risk{RiskKeyRotation}, nil},
		{"POST", sub + "/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acc/ListAccountSas?api-version=2022-09-01", `{}`, "microsoft.storage/storageaccounts/listaccountsas/action", command.KindRead,
			sub + "/resourcegroups/rg/providers/microsoft.storage/storageaccounts/acc", []command.Risk{RiskSecretRead}, nil},
		{"POST", sub + "/resourceGroups/rg/providers/Microsoft.Web/sites/app/config/appsettings/list?api-version=2022-03-01", "", "microsoft.web/sites/config/list/action", command.KindRead,
			sub + "/resourcegroups/rg/providers/microsoft.web/sites/app/config/appsettings", []command.Risk{RiskSecretRead}, map[string]string{"name": "app/appsettings"}},
		{"POST", sub + "/resourceGroups/rg/providers/Microsoft.Web/sites/app/config/publishingcredentials/list?api-version=2022-03-01", "", "microsoft.web/sites/config/list/action", command.KindRead,
			sub + "/resourcegroups/rg/providers/microsoft.web/sites/app/config/publishingcredentials", []command.Risk{RiskSecretRead}, nil},
		{"POST", sub + "/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm/runCommand?api-version=2022-08-01", `{"commandId":"RunShellScript"}`, "microsoft.compute/virtualmachines/runcommand/action", command.KindWrite,
			sub + "/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm", []command.Risk{RiskCodeExecution}, nil},
		// H02: any case, any scope, extension resources.
		{"PUT", sub + "/resourceGroups/rg/providers/MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/abc?api-version=2022-04-01", `{"properties":{}}`, "microsoft.authorization/roleassignments/write", command.KindAdmin,
			sub + "/resourcegroups/rg/providers/microsoft.authorization/roleassignments/abc", []command.Risk{RiskRoleAssignment}, nil},
		{"PUT", sub + "/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acc/providers/Microsoft.Authorization/roleAssignments/abc?api-version=2022-04-01", `{}`, "microsoft.authorization/roleassignments/write", command.KindAdmin,
			sub + "/resourcegroups/rg/providers/microsoft.storage/storageaccounts/acc/providers/microsoft.authorization/roleassignments/abc", []command.Risk{RiskRoleAssignment},
			map[string]string{"scope": sub + "/resourcegroups/rg/providers/microsoft.storage/storageaccounts/acc"}},
		{"PUT", "/providers/Microsoft.Management/managementGroups/mg/providers/Microsoft.Authorization/roleAssignments/abc?api-version=2022-04-01", `{}`, "microsoft.authorization/roleassignments/write", command.KindAdmin,
			"/providers/microsoft.management/managementgroups/mg/providers/microsoft.authorization/roleassignments/abc", []command.Risk{RiskRoleAssignment}, nil},
		{"GET", sub + "/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01", "", "microsoft.authorization/roleassignments/read", command.KindRead,
			sub + "/providers/microsoft.authorization/roleassignments", nil, nil},
		// H08: deployments are read for what they deploy.
		{"PUT", sub + "/resourcegroups/rg/providers/Microsoft.Resources/deployments/d?api-version=2022-09-01",
			`{"properties":{"template":{"resources":[{"type":"Microsoft.Authorization/roleAssignments"}]}}}`, "microsoft.resources/deployments/write", command.KindAdmin,
			sub + "/resourcegroups/rg/providers/microsoft.resources/deployments/d", []command.Risk{RiskRoleAssignment}, nil},
		{"PUT", sub + "/resourcegroups/rg/providers/Microsoft.Resources/deployments/d?api-version=2022-09-01",
			`{"properties":{"template":{"resources":[{"type":"Microsoft.Storage/storageAccounts","name":"x"}]}}}`, "microsoft.resources/deployments/write", command.KindWrite,
			sub + "/resourcegroups/rg/providers/microsoft.resources/deployments/d", nil, nil},
		{"POST", sub + "/resourcegroups/rg/providers/Microsoft.Resources/deployments/d/validate?api-version=2022-09-01",
			`{"properties":{"template":{"resources":[{"type":"[variables('t')]"}]}}}`, "microsoft.resources/deployments/validate/action", command.KindAdmin,
			sub + "/resourcegroups/rg/providers/microsoft.resources/deployments/d", []command.Risk{RiskOpaqueTemplate}, nil},
		{"PUT", sub + "/providers/Microsoft.Resources/deployments/d?api-version=2022-09-01",
			`{"properties":{"templateLink":{"uri":"https://x/t.json"}}}`, "microsoft.resources/deployments/write", command.KindAdmin,
			sub + "/providers/microsoft.resources/deployments/d", []command.Risk{RiskOpaqueTemplate}, nil},
		{"POST", sub + "/providers/Microsoft.Storage/register?api-version=2022-09-01", "", "microsoft.storage/register/action", command.KindWrite,
			sub + "/providers/microsoft.storage", nil, nil},
		{"GET", sub + "/providers/Microsoft.Storage?api-version=2022-09-01", "", "microsoft.resources/subscriptions/providers/read", command.KindRead,
			sub + "/providers/microsoft.storage", nil, nil},
		{"GET", sub + "/operationresults/eyJqb2JJZCI6IlJFU09VUkNF?api-version=2022-09-01", "", "microsoft.resources/subscriptions/operationresults/read", command.KindRead, sub + "/operationresults/eyjqb2jjzci6iljfu09vuknf", nil, nil},
		{"GET", sub + "/providers/Microsoft.Storage/locations/eastus/asyncoperations/abc?api-version=2022-09-01&monitor=true", "", "microsoft.storage/locations/asyncoperations/read", command.KindRead,
			sub + "/providers/microsoft.storage/locations/eastus/asyncoperations/abc", nil, nil},
		{"PUT", sub + "/resourcegroups/rg/providers/Microsoft.Resources/deploymentStacks/s?api-version=2024-03-01", `{"properties":{"template":{"resources":[{"type":"Microsoft.Authorization/roleAssignments"}]}}}`,
			"microsoft.resources/deploymentstacks/write", command.KindAdmin, sub + "/resourcegroups/rg/providers/microsoft.resources/deploymentstacks/s", []command.Risk{RiskRoleAssignment}, nil},
		{"PUT", sub + "/resourcegroups/rg/providers/Microsoft.Resources/deployments/d?api-version=2022-09-01", `{"properties":{"template":"{\"resources\":[]}"}}`,
			"microsoft.resources/deployments/write", command.KindAdmin, sub + "/resourcegroups/rg/providers/microsoft.resources/deployments/d", []command.Risk{RiskOpaqueTemplate}, nil},
		{"GET", sub + "/locations?api-version=2022-12-01", "", "microsoft.resources/subscriptions/locations/read", command.KindRead, sub + "/locations", nil, nil},
		// Code run on a machine by creating a child resource, not only by
		// the runCommand action: managed run commands and extensions
		// (CustomScript) are what a deployment of them is flagged for.
		{"PUT", sub + "/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm/runCommands/rc?api-version=2023-03-01", `{"location":"eastus","properties":{"source":{"script":"id"}}}`,
			"microsoft.compute/virtualmachines/runcommands/write", command.KindWrite, sub + "/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm/runcommands/rc", []command.Risk{RiskCodeExecution}, nil},
		{"PUT", sub + "/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm/extensions/CustomScript?api-version=2023-03-01", `{"location":"eastus","properties":{"type":"CustomScript"}}`,
			"microsoft.compute/virtualmachines/extensions/write", command.KindWrite, sub + "/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm/extensions/customscript", []command.Risk{RiskCodeExecution}, nil},
		{"PATCH", sub + "/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss/extensions/e?api-version=2023-03-01", `{"properties":{}}`,
			"microsoft.compute/virtualmachinescalesets/extensions/write", command.KindWrite, sub + "/resourcegroups/rg/providers/microsoft.compute/virtualmachinescalesets/ss/extensions/e", []command.Risk{RiskCodeExecution}, nil},
		// All of Microsoft.Authorization is governance: PIM policies,
		// exemptions, elevateAccess (User Access Administrator at root).
		{"PUT", sub + "/resourceGroups/rg/providers/Microsoft.Authorization/roleManagementPolicies/p?api-version=2020-10-01", `{"properties":{}}`,
			"microsoft.authorization/rolemanagementpolicies/write", command.KindAdmin, sub + "/resourcegroups/rg/providers/microsoft.authorization/rolemanagementpolicies/p", []command.Risk{RiskRoleAssignment}, nil},
		{"PUT", sub + "/resourceGroups/rg/providers/Microsoft.Authorization/policyExemptions/e?api-version=2024-12-01", `{"properties":{}}`,
			"microsoft.authorization/policyexemptions/write", command.KindAdmin, sub + "/resourcegroups/rg/providers/microsoft.authorization/policyexemptions/e", nil, nil},
		{"POST", "/providers/Microsoft.Authorization/elevateAccess?api-version=2016-07-01", "",
			"microsoft.authorization/elevateaccess/action", command.KindAdmin, "/providers/microsoft.authorization", []command.Risk{RiskRoleAssignment}, nil},
		{"GET", sub + "/resourceGroups/rg/providers/Microsoft.Authorization/policyExemptions?api-version=2024-12-01", "",
			"microsoft.authorization/policyexemptions/read", command.KindRead, sub + "/resourcegroups/rg/providers/microsoft.authorization/policyexemptions", nil, nil},
		{"GET", sub + "/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm/runCommands?api-version=2023-03-01", "",
			"microsoft.compute/virtualmachines/runcommands/read", command.KindRead, sub + "/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm/runcommands", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			path, query, _ := strings.Cut(tc.target, "?")
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			cl, err := Classify(armOpts(), tc.method, path, query, body)
			if err != nil {
				t.Fatal(err)
			}
			c := cl.Commands[0]
			if c.Operation != tc.op || c.Kind != tc.kind || c.Resource != tc.resource || !slices.Equal(c.Risks, tc.risks) {
				t.Fatalf("got op %q kind %q resource %q risks %v\nwant op %q kind %q resource %q risks %v", c.Operation, c.Kind, c.Resource, c.Risks, tc.op, tc.kind, tc.resource, tc.risks)
			}
			for k, v := range tc.attrs {
				if c.Attrs[k] != v {
					t.Fatalf("attr %s = %q, want %q (%v)", k, c.Attrs[k], v, c.Attrs)
				}
			}
			if c.Protocol != "arm" || c.Method != tc.method || c.Text == "" {
				t.Fatalf("command %+v", c)
			}
		})
	}
}

func TestClassifyRefusals(t *testing.T) {
	tests := []struct {
		name, method, target, body, code string
	}{
		{"H01 encoded slash", "GET", sub + "/resourcegroups%2frg?api-version=2022-09-01", "", "InvalidPath"},
		{"H01 encoded backslash", "GET", sub + "/resourcegroups%5Crg?api-version=2022-09-01", "", "InvalidPath"},
		{"H01 double encoding", "GET", sub + "/resourcegroups/%252e%252e?api-version=2022-09-01", "", "InvalidPath"},
		{"H01 dot dot", "GET", sub + "/resourcegroups/../x?api-version=2022-09-01", "", "InvalidPath"},
		{"H01 encoded dot", "GET", sub + "/resourcegroups/%2E?api-version=2022-09-01", "", "InvalidPath"},
		{"H01 empty segment", "GET", sub + "//resourcegroups?api-version=2022-09-01", "", "InvalidPath"},
		{"H01 semicolon", "GET", sub + ";v=1/resourcegroups?api-version=2022-09-01", "", "InvalidPath"},
		{"H01 NUL", "GET", sub + "/resourcegroups/a%00b?api-version=2022-09-01", "", "InvalidPath"},
		{"H01 control", "GET", sub + "/resourcegroups/a%0ab?api-version=2022-09-01", "", "InvalidPath"},
		{"H01 bad escape", "GET", sub + "/resourcegroups/a%zz?api-version=2022-09-01", "", "InvalidPath"},
		{"H03 duplicate", "GET", sub + "?api-version=2022-09-01&api-version=2022-09-01", "", "DuplicateParameter"},
		{"H03 case variant", "GET", sub + "?api-version=2022-09-01&Api-Version=2021-01-01", "", "DuplicateParameter"},
		{"H03 preview", "GET", sub + "?api-version=2022-09-01-preview", "", "InvalidApiVersion"},
		{"H03 garbage", "GET", sub + "?api-version=latest", "", "InvalidApiVersion"},
		{"H03 missing", "GET", sub, "", "MissingApiVersion"},
		{"H03 upper-case name", "GET", sub + "?API-VERSION=2022-09-01", "", "InvalidApiVersion"},
		{"H04 override param", "POST", sub + "?api-version=2022-09-01&X-HTTP-Method-Override=DELETE", "", "MethodOverrideRefused"},
		{"H04 _method", "POST", sub + "?api-version=2022-09-01&_method=DELETE", "", "MethodOverrideRefused"},
		{"semicolon query", "GET", sub + "?api-version=2022-09-01;x=1", "", "InvalidQuery"},
		{"duplicate $filter", "GET", sub + "/resources?api-version=2022-09-01&$filter=a&$filter=b", "", "DuplicateParameter"},
		{"GET with body", "GET", sub + "?api-version=2022-09-01", `{}`, "BodyNotAllowed"},
		{"H13 duplicate key", "PUT", sub + "/resourcegroups/rg?api-version=2022-09-01", `{"location":"a","location":"b"}`, "DuplicateJSONKey"},
		{"H13 case variant", "PUT", sub + "/resourcegroups/rg?api-version=2022-09-01", `{"properties":{"principalId":"A","PrincipalId":"B"}}`, "DuplicateJSONKey"},
		{"H13 nested in array", "PUT", sub + "/resourcegroups/rg?api-version=2022-09-01", `{"a":[{"roleDefinitionId":"x","roleDefinitionID":"y"}]}`, "DuplicateJSONKey"},
		{"invalid JSON", "PUT", sub + "/resourcegroups/rg?api-version=2022-09-01", `{"a":`, "InvalidJSON"},
		{"trailing JSON", "PUT", sub + "/resourcegroups/rg?api-version=2022-09-01", `{} {}`, "InvalidJSON"},
		{"invalid UTF-8", "PUT", sub + "/resourcegroups/rg?api-version=2022-09-01", "{\"a\":\"\xff\"}", "InvalidJSON"},
		{"unknown top level", "GET", "/weird?api-version=2022-09-01", "", "UnknownOperation"},
		{"POST on a resource", "POST", sub + "/resourcegroups/rg/providers/Microsoft.Storage/storageAccounts/acc?api-version=2022-09-01", "", "UnknownOperation"},
		{"PUT on a collection", "PUT", sub + "/resourcegroups?api-version=2022-09-01", "", "UnknownOperation"},
		{"H05 batch with DELETE of unknown path", "POST", "/batch?api-version=2020-06-01", `{"requests":[{"httpMethod":"DELETE","url":"/x?api-version=2022-09-01"}]}`, "UnknownOperation"},
		{"H05 batch in batch", "POST", "/batch?api-version=2020-06-01", `{"requests":[{"httpMethod":"POST","url":"/batch?api-version=2020-06-01","content":{"requests":[]}}]}`, "InvalidBatch"},
		{"H05 batch foreign host", "POST", "/batch?api-version=2020-06-01", `{"requests":[{"httpMethod":"GET","url":"https://evil.example/subscriptions?api-version=2022-12-01"}]}`, "ForeignHost"},
		{"H05 batch http scheme", "POST", "/batch?api-version=2020-06-01", `{"requests":[{"httpMethod":"GET","url":"http://management.azure.com/subscriptions?api-version=2022-12-01"}]}`, "ForeignHost"},
		{"H05 batch unknown method", "POST", "/batch?api-version=2020-06-01", `{"requests":[{"httpMethod":"TRACE","url":"/subscriptions?api-version=2022-12-01"}]}`, "InvalidBatch"},
		{"H05 empty batch", "POST", "/batch?api-version=2020-06-01", `{"requests":[]}`, "InvalidBatch"},
		{"H05 batch sub-request H13", "POST", "/batch?api-version=2020-06-01", `{"requests":[{"httpMethod":"PUT","url":"/subscriptions/s/resourcegroups/r?api-version=2022-09-01","content":{"a":1,"A":2}}]}`, "DuplicateJSONKey"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, query, _ := strings.Cut(tc.target, "?")
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			_, err := Classify(armOpts(), tc.method, path, query, body)
			var r *Refusal
			if !errors.As(err, &r) || r.Code != tc.code {
				t.Fatalf("got %v, want refusal %s", err, tc.code)
			}
			if !strings.HasPrefix(r.Msg, "weir: ") {
				t.Fatalf("message %q does not say it is weir's", r.Msg)
			}
		})
	}
}

// H05: one batch, one Commands slice, every sub-request in it.
func TestClassifyBatch(t *testing.T) {
	body := `{"requests":[
		{"httpMethod":"GET","name":"a","url":"/subscriptions/s/resourcegroups?api-version=2022-09-01"},
		{"httpMethod":"DELETE","name":"b","url":"https://management.azure.com/subscriptions/s/resourcegroups/prod?api-version=2022-09-01"},
		{"httpMethod":"PUT","name":"c","url":"/subscriptions/s/resourcegroups/rg/providers/Microsoft.Authorization/roleAssignments/x?api-version=2022-04-01","content":{"properties":{}}}]}`
	cl, err := Classify(armOpts(), "POST", "/batch", "api-version=2020-06-01", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(cl.Commands) != 3 {
		t.Fatalf("%d commands", len(cl.Commands))
	}
	if cl.Commands[1].Method != "DELETE" || cl.Commands[1].Resource != "/subscriptions/s/resourcegroups/prod" || !cl.Commands[2].HasRisk(RiskRoleAssignment) {
		t.Fatalf("%+v", cl.Commands)
	}
}

func TestClassifyVault(t *testing.T) {
	o := &ClassifyOptions{Kind: config.KindAzureKeyVault, Host: "MyVault.vault.azure.net"}
	tests := []struct {
		method, target, op string
		kind               command.Kind
		resource           string
		secretRead         bool
	}{
		{"GET", "/secrets?api-version=7.4", "microsoft.keyvault/vaults/secrets/list", command.KindRead, "myvault/secrets", false},
		{"GET", "/secrets/DB-Password/?api-version=7.4", "microsoft.keyvault/vaults/secrets/get", command.KindRead, "myvault/secrets/db-password", true},
		{"GET", "/secrets/db/4387e9f3d6e14c459867679a90fd0f79?api-version=7.4", "microsoft.keyvault/vaults/secrets/get", command.KindRead, "myvault/secrets/db/4387e9f3d6e14c459867679a90fd0f79", true},
		{"GET", "/secrets/db/versions?api-version=7.4", "microsoft.keyvault/vaults/secrets/listversions", command.KindRead, "myvault/secrets/db", false},
		{"PUT", "/secrets/db?api-version=7.4", "microsoft.keyvault/vaults/secrets/set", command.KindWrite, "myvault/secrets/db", false},
		{"DELETE", "/secrets/db?api-version=7.4", "microsoft.keyvault/vaults/secrets/delete", command.KindWrite, "myvault/secrets/db", false},
		{"POST", "/secrets/db/backup?api-version=7.4", "microsoft.keyvault/vaults/secrets/backup", command.KindRead, "myvault/secrets/db", true},
		{"POST", "/secrets/restore?api-version=7.4", "microsoft.keyvault/vaults/secrets/restore", command.KindWrite, "myvault/secrets", false},
		{"DELETE", "/deletedsecrets/db?api-version=7.4", "microsoft.keyvault/vaults/secrets/purge", command.KindAdmin, "myvault/deletedsecrets/db", false},
		{"POST", "/deletedsecrets/db/recover?api-version=7.4", "microsoft.keyvault/vaults/secrets/recover", command.KindWrite, "myvault/deletedsecrets/db", false},
		{"GET", "/keys/k?api-version=7.4", "microsoft.keyvault/vaults/keys/get", command.KindRead, "myvault/keys/k", false},
		{"POST", "/keys/k/create?api-version=7.4", "microsoft.keyvault/vaults/keys/create", command.KindWrite, "myvault/keys/k", false},
		{"POST", "/keys/k/v1/decrypt?api-version=7.4", "microsoft.keyvault/vaults/keys/decrypt", command.KindRead, "myvault/keys/k/v1", false},
		// Release hands out the key itself, with or without a version.
		{"POST", "/keys/k/release?api-version=7.4", "microsoft.keyvault/vaults/keys/release", command.KindRead, "myvault/keys/k", true},
		{"POST", "/keys/k/v1/release?api-version=7.4", "microsoft.keyvault/vaults/keys/release", command.KindRead, "myvault/keys/k/v1", true},
		{"GET", "/certificates/c?api-version=7.4", "microsoft.keyvault/vaults/certificates/get", command.KindRead, "myvault/certificates/c", false},
		{"PUT", "/certificates/issuers/i?api-version=7.4", "microsoft.keyvault/vaults/certificates/issuers", command.KindAdmin, "myvault/certificates/issuers/i", false},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			path, query, _ := strings.Cut(tc.target, "?")
			var body []byte
			if tc.method == "PUT" || (tc.method == "POST" && !strings.HasSuffix(path, "backup") && !strings.HasSuffix(path, "recover")) {
				body = []byte(`{"value":"x"}`)
			}
			cl, err := Classify(o, tc.method, path, query, body)
			if err != nil {
				t.Fatal(err)
			}
			c := cl.Commands[0]
			if c.Operation != tc.op || c.Kind != tc.kind || c.Resource != tc.resource || c.HasRisk(RiskSecretRead) != tc.secretRead || c.Attrs["vault"] != "myvault" || c.Protocol != "keyvault" {
				t.Fatalf("got %+v", c)
			}
		})
	}
	for _, bad := range []string{"/secrets/a/b/c/d", "/storage/x", "/secrets/a/unknownop/x", "/"} {
		if _, err := Classify(o, "GET", bad, "api-version=7.4", nil); err == nil {
			t.Errorf("%s was classified", bad)
		}
	}
	if _, err := Classify(o, "GET", "/secrets/a", "api-version=7.5-preview.1", nil); err == nil {
		t.Error("a preview Key Vault version was accepted without azure.api_versions")
	}
	o.APIVersions = []string{"7.5-preview.1"}
	if _, err := Classify(o, "GET", "/secrets/a", "api-version=7.5-preview.1", nil); err != nil {
		t.Errorf("an allowed preview version was refused: %v", err)
	}
	if _, err := Classify(o, "GET", "/secrets/a", "api-version=7.4", nil); err == nil {
		t.Error("a version outside azure.api_versions was accepted")
	}
}

func TestClassifyFunctions(t *testing.T) {
	o := &ClassifyOptions{Kind: config.KindAzureFunctions, Host: "myapp.azurewebsites.net"}
	cl, err := Classify(o, "POST", "/api/Orders/42", "x=1", []byte(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	c := cl.Commands[0]
	if c.Attrs["function"] != "orders" || c.Attrs["site"] != "myapp" || c.Kind != command.KindWrite || c.Resource != "myapp/api/orders/42" {
		t.Fatalf("%+v", c)
	}
	// The host routes /API/ADMIN to the admin function: the resource a
	// rule matches is the same for every case of the prefix and function.
	cl, err = Classify(o, "GET", "/API/Admin/Users/Bob", "", nil)
	if err != nil || cl.Commands[0].Resource != "myapp/api/admin/Users/Bob" || cl.Path != "/API/Admin/Users/Bob" {
		t.Fatalf("%v %+v", err, cl)
	}
	for _, tc := range []struct{ path, query string }{{"/admin/host/keys", ""}, {"/runtime/webhooks/x", ""}, {"/api/f", "code=abc"}, {"/api/f", "Code=abc"}, {"/api/f", "CODE=abc"}, {"/api", ""}} {
		if _, err := Classify(o, "GET", tc.path, tc.query, nil); err == nil {
			t.Errorf("%s?%s was classified", tc.path, tc.query)
		}
	}
}
