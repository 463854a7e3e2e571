package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// validRender is a minimal render that passes every check: a gate Deployment, its policy
// ConfigMap and a Service.
const validRender = `
apiVersion: v1
kind: ConfigMap
metadata:
  name: policy
data:
  policy.toml: |
    version = 1
    [default]
    mode = "enforce"
    admit = ["*"]
---
apiVersion: v1
kind: Service
metadata:
  name: gate
spec:
  selector:
    app: gate
  ports:
    - name: http
      port: 5050
      targetPort: http
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: gate
spec:
  replicas: 1
  selector:
    matchLabels:
      app: gate
  template:
    metadata:
      labels:
        app: gate
    spec:
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 45
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: wasmgate
          image: wasmgate:test
          args: ["--listen", "0.0.0.0:5050", "--admin-listen", "0.0.0.0:9090", "--upstream", "http://registry:5000", "--policy", "/etc/wasmgate/policy.toml"]
          ports:
            - name: http
              containerPort: 5050
            - name: admin
              containerPort: 9090
          livenessProbe:
            httpGet:
              path: /healthz
              port: admin
          readinessProbe:
            httpGet:
              path: /readyz
              port: admin
          resources:
            requests:
              cpu: 100m
              memory: 128Mi
            limits:
              memory: 1Gi
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: ["ALL"]
          volumeMounts:
            - name: policy
              mountPath: /etc/wasmgate
              readOnly: true
      volumes:
        - name: policy
          configMap:
            name: policy
`

func decode(t *testing.T, render string) ([]Document, []error) {
	t.Helper()
	return ReadDocuments(newScheme(), "test.yaml", strings.NewReader(render))
}

func TestStrictDecodingAcceptsValidRender(t *testing.T) {
	documents, failures := decode(t, validRender)

	if len(failures) != 0 {
		t.Fatalf("valid render rejected: %v", failures)
	}
	if len(documents) != 3 {
		t.Errorf("decoded %d documents, expected 3", len(documents))
	}
}

func TestStrictDecodingRejectsBrokenObjects(t *testing.T) {
	cases := []struct {
		name, old, new, expected string
	}{
		{"unknown field", "image: wasmgate:test", "image: wasmgate:test\n          imagePullPolice: Always", `unknown field "spec.template.spec.containers[0].imagePullPolice"`},
		{"misspelled container field", "readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true", `unknown field "spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem"`},
		{"wrong type", "replicas: 1", `replicas: "one"`, "spec.replicas"},
		{"port as list", "containerPort: 9090", "containerPort: [9090]", "containerPort"},
		{"duplicate key", "  replicas: 1", "  replicas: 1\n  replicas: 2", `"replicas" already set`},
		{"unknown kind", "kind: Service", "kind: Servise", `unknown kind "Servise"`},
		{"unknown version", "apiVersion: apps/v1", "apiVersion: apps/v1beta9", `unknown kind "Deployment" in apiVersion "apps/v1beta9"`},
		{"field in wrong case", "automountServiceAccountToken", "automountServiceaccountToken", "automountServiceaccountToken"},
	}
	for _, test := range cases {
		t.Run(test.name, func(t *testing.T) {
			render := strings.Replace(validRender, test.old, test.new, 1)
			if render == validRender {
				t.Fatalf("%q is not in the render", test.old)
			}

			_, failures := decode(t, render)

			if len(failures) == 0 {
				t.Fatalf("render with %s was accepted", test.name)
			}
			joined := joinErrors(failures)
			if !strings.Contains(joined, test.expected) {
				t.Errorf("failures %q do not mention %q", joined, test.expected)
			}
		})
	}
}

func TestStrictDecodingReportsEveryError(t *testing.T) {
	render := strings.Replace(validRender, "replicas: 1", `replicas: "one"`, 1)
	render = strings.Replace(render, "readOnly: true", "readOnly: true\n              readonly: true", 1)

	_, failures := decode(t, render)

	joined := joinErrors(failures)
	for _, expected := range []string{"spec.replicas", `unknown field "spec.template.spec.containers[0].volumeMounts[0].readonly"`} {
		if !strings.Contains(joined, expected) {
			t.Errorf("failures %q do not mention %q", joined, expected)
		}
	}
}

func TestGateChecksRejectBrokenPods(t *testing.T) {
	cases := []struct {
		name, old, new, expected string
	}{
		{"liveness on client port", "path: /healthz\n              port: admin", "path: /healthz\n              port: http", "livenessProbe.httpGet.port http is port 5050"},
		{"readiness wrong path", "path: /readyz", "path: /healthz", `readinessProbe.httpGet.path is "/healthz"`},
		{"policy outside mount", `"/etc/wasmgate/policy.toml"`, `"/etc/gate/policy.toml"`, `no volume is mounted at "/etc/gate"`},
		{"policy key missing", `"/etc/wasmgate/policy.toml"`, `"/etc/wasmgate/rules.toml"`, `has no key "rules.toml"`},
		{"writable root", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "readOnlyRootFilesystem is not true"},
		{"capabilities kept", `drop: ["ALL"]`, `drop: ["NET_RAW"]`, "does not drop ALL capabilities"},
		{"no seccomp", "type: RuntimeDefault", "type: Unconfined", "seccompProfile is not RuntimeDefault"},
		{"root allowed", "runAsNonRoot: true", "runAsNonRoot: false", "runAsNonRoot is not true"},
		{"loopback listener", `"0.0.0.0:5050"`, `"127.0.0.1:5050"`, "is a loopback address"},
		{"undeclared admin port", "containerPort: 9090", "containerPort: 9091", "--admin-listen port 9090 is not declared"},
		{"no memory limit", "limits:\n              memory: 1Gi", "limits: {}", "has no resources.limits.memory"},
		{"service to wrong port", "targetPort: http", "targetPort: 5051", "targets 5051, which no container"},
		{"missing configmap", "name: policy\ndata", "name: other\ndata", `ConfigMap "policy", which is neither rendered`},
	}
	for _, test := range cases {
		t.Run(test.name, func(t *testing.T) {
			render := strings.Replace(validRender, test.old, test.new, 1)
			if render == validRender {
				t.Fatalf("%q is not in the render", test.old)
			}
			documents, decodeFailures := decode(t, render)
			if len(decodeFailures) != 0 {
				t.Fatalf("render does not decode: %v", decodeFailures)
			}

			failures := checkWithoutBinary(t, documents)

			joined := joinErrors(failures)
			if !strings.Contains(joined, test.expected) {
				t.Errorf("failures %q do not mention %q", joined, test.expected)
			}
		})
	}
}

func TestGateChecksPassValidRender(t *testing.T) {
	documents, _ := decode(t, validRender)

	failures := checkWithoutBinary(t, documents)

	if len(failures) != 0 {
		t.Errorf("valid render failed: %v", failures)
	}
}

// sidecarRender is validRender with Distribution in the gate's Pod on a
// PersistentVolumeClaim, set up to pass every check.
var sidecarRender = strings.NewReplacer(
	`"http://registry:5000"`, `"http://127.0.0.1:5000"`,
	"        runAsUser: 65532\n", "        runAsUser: 65532\n        fsGroup: 65532\n        fsGroupChangePolicy: OnRootMismatch\n",
	"      volumes:\n", `        - name: registry
          image: registry:3
          env:
            - name: REGISTRY_HTTP_ADDR
              value: 127.0.0.1:5000
            - name: REGISTRY_HTTP_DEBUG_ADDR
              value: 127.0.0.1:5001
            - name: REGISTRY_HTTP_DRAINTIMEOUT
              value: 5s
          lifecycle:
            preStop:
              sleep:
                seconds: 30
          resources:
            requests:
              cpu: 100m
              memory: 128Mi
            limits:
              memory: 512Mi
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: ["ALL"]
          volumeMounts:
            - name: data
              mountPath: /var/lib/registry
      volumes:
        - name: data
          persistentVolumeClaim:
            claimName: registry-data
`).Replace(validRender)

func TestSidecarChecksPassValidRender(t *testing.T) {
	documents, decodeFailures := decode(t, sidecarRender)
	if len(decodeFailures) != 0 {
		t.Fatalf("render does not decode: %v", decodeFailures)
	}

	failures := checkWithoutBinary(t, documents)

	if len(failures) != 0 {
		t.Errorf("valid sidecar render failed: %v", failures)
	}
}

func TestSidecarChecksRejectBrokenRegistry(t *testing.T) {
	cases := []struct {
		name, old, new, expected string
	}{
		{"registry on every interface", "value: 127.0.0.1:5000", "value: 0.0.0.0:5000", `listens on "0.0.0.0:5000"`},
		{"debug server on every interface", "value: 127.0.0.1:5001", "value: :5001", `REGISTRY_HTTP_DEBUG_ADDR is ":5001"`},
		{"debug address missing", "name: REGISTRY_HTTP_DEBUG_ADDR", "name: REGISTRY_HTTP_HOST", "REGISTRY_HTTP_DEBUG_ADDR is not set"},
		{"drain timeout missing", "name: REGISTRY_HTTP_DRAINTIMEOUT", "name: REGISTRY_HTTP_SECRET", "REGISTRY_HTTP_DRAINTIMEOUT is not set"},
		{"drain timeout zero", "value: 5s", "value: 0s", `REGISTRY_HTTP_DRAINTIMEOUT is "0s"`},
		{"drain timeout past grace", "value: 5s", "value: 15s", "plus REGISTRY_HTTP_DRAINTIMEOUT (15s) is not below terminationGracePeriodSeconds 45"},
		{"registry stops before gate", "seconds: 30", "seconds: 10", "preStop sleep of 10 s, below the gate's preStop sleep plus --shutdown-grace (30 s)"},
		{"registry without preStop", "          lifecycle:\n            preStop:\n              sleep:\n                seconds: 30\n", "", "preStop sleep of 0 s"},
		{"fsGroup walks the volume", "        fsGroupChangePolicy: OnRootMismatch\n", "", "without fsGroupChangePolicy OnRootMismatch"},
	}
	for _, test := range cases {
		t.Run(test.name, func(t *testing.T) {
			render := strings.Replace(sidecarRender, test.old, test.new, 1)
			if render == sidecarRender {
				t.Fatalf("%q is not in the render", test.old)
			}
			documents, decodeFailures := decode(t, render)
			if len(decodeFailures) != 0 {
				t.Fatalf("render does not decode: %v", decodeFailures)
			}

			failures := checkWithoutBinary(t, documents)

			joined := joinErrors(failures)
			if !strings.Contains(joined, test.expected) {
				t.Errorf("failures %q do not mention %q", joined, test.expected)
			}
		})
	}
}

// exposedRender is validRender with a NetworkPolicy, a metrics Service with its
// ServiceMonitor, and an ingress-nginx Ingress, set up to pass every check.
const exposedRender = validRender + `
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: gate
spec:
  podSelector:
    matchLabels:
      app: gate
  policyTypes: ["Ingress"]
  ingress:
    - ports:
        - port: http
          protocol: TCP
    - ports:
        - port: admin
---
apiVersion: v1
kind: Service
metadata:
  name: gate-metrics
  labels:
    component: metrics
spec:
  selector:
    app: gate
  ports:
    - name: metrics
      port: 9090
      targetPort: admin
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: gate
spec:
  selector:
    matchLabels:
      component: metrics
  endpoints:
    - port: metrics
      path: /metrics
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: gate
  annotations:
    nginx.ingress.kubernetes.io/proxy-body-size: "0"
    nginx.ingress.kubernetes.io/proxy-request-buffering: "off"
    nginx.ingress.kubernetes.io/proxy-buffering: "off"
    nginx.ingress.kubernetes.io/proxy-read-timeout: "600"
    nginx.ingress.kubernetes.io/proxy-send-timeout: "600"
spec:
  ingressClassName: nginx
  rules:
    - host: wasm.example.com
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: gate
                port:
                  name: http
`

// checkExposedWithoutBinary runs checkWithoutBinary plus the ingress-nginx checks.
func checkExposedWithoutBinary(t *testing.T, documents []Document) []error {
	t.Helper()
	failures := checkWithoutBinary(t, documents)
	cluster := NewCluster(documents, nil)
	var gateFailures Failures
	gates := FindGates(cluster, CheckOptions{GateContainer: "wasmgate"}, &gateFailures)
	checkIngressNginx(cluster, gates, &gateFailures)
	return append(failures, gateFailures...)
}

func TestExposureChecksPassValidRender(t *testing.T) {
	documents, decodeFailures := decode(t, exposedRender)
	if len(decodeFailures) != 0 {
		t.Fatalf("render does not decode: %v", decodeFailures)
	}

	failures := checkExposedWithoutBinary(t, documents)

	if len(failures) != 0 {
		t.Errorf("valid exposed render failed: %v", failures)
	}
}

func TestExposureChecksRejectBrokenObjects(t *testing.T) {
	cases := []struct {
		name, old, new, expected string
	}{
		{"network policy port renamed", "- port: http\n          protocol: TCP", "- port: gate\n          protocol: TCP", `admits port "gate", which no container of Deployment "gate" declares`},
		{"network policy wrong protocol", "- port: http\n          protocol: TCP", "- port: http\n          protocol: UDP", `admits port "http", which no container`},
		{"metrics service to client port", "targetPort: admin", "targetPort: http", `port "metrics", scraped by ServiceMonitor "gate", targets port 5050 of container "wasmgate" instead of the gate's admin port 9090`},
		{"service monitor wrong path", "path: /metrics", "path: /stats", `scrapes path "/stats"`},
		{"ingress buffers downloads", "    nginx.ingress.kubernetes.io/proxy-buffering: \"off\"\n", "", `annotation nginx.ingress.kubernetes.io/proxy-buffering is "", expected "off"`},
		{"ingress buffers uploads", `proxy-request-buffering: "off"`, `proxy-request-buffering: "on"`, `proxy-request-buffering is "on"`},
	}
	for _, test := range cases {
		t.Run(test.name, func(t *testing.T) {
			render := strings.Replace(exposedRender, test.old, test.new, 1)
			if render == exposedRender {
				t.Fatalf("%q is not in the render", test.old)
			}
			documents, decodeFailures := decode(t, render)
			if len(decodeFailures) != 0 {
				t.Fatalf("render does not decode: %v", decodeFailures)
			}

			failures := checkExposedWithoutBinary(t, documents)

			joined := joinErrors(failures)
			if !strings.Contains(joined, test.expected) {
				t.Errorf("failures %q do not mention %q", joined, test.expected)
			}
		})
	}
}

func TestEgressChecks(t *testing.T) {
	dns := `
    - ports:
        - port: 53
          protocol: UDP`
	upstream := `
    - ports:
        - port: 5000`
	cases := []struct {
		name, egress, expected string
	}{
		{"dns and upstream allowed", dns + upstream, ""},
		{"upstream in a port range", dns + "\n    - ports:\n        - port: 4000\n          endPort: 6000", ""},
		{"rule without ports", "\n    - to:\n        - ipBlock:\n            cidr: 10.0.0.0/8", ""},
		{"upstream blocked", dns, "no egress rule allows TCP port 5000"},
		{"upstream by name only", dns + "\n    - ports:\n        - port: registry", "no egress rule allows TCP port 5000"},
		{"dns blocked", upstream, "no egress rule allows DNS (UDP port 53)"},
		{"dns over tcp only", upstream + "\n    - ports:\n        - port: 53\n          protocol: TCP", "no egress rule allows DNS (UDP port 53)"},
		{"nothing allowed", " []", "no egress rule allows TCP port 5000"},
	}
	for _, test := range cases {
		t.Run(test.name, func(t *testing.T) {
			render := strings.Replace(exposedRender, `policyTypes: ["Ingress"]`, `policyTypes: ["Ingress", "Egress"]
  egress:`+test.egress, 1)
			documents, decodeFailures := decode(t, render)
			if len(decodeFailures) != 0 {
				t.Fatalf("render does not decode: %v", decodeFailures)
			}

			failures := checkExposedWithoutBinary(t, documents)

			joined := joinErrors(failures)
			if test.expected == "" && joined != "" {
				t.Errorf("allowed egress rejected: %s", joined)
			}
			if !strings.Contains(joined, test.expected) {
				t.Errorf("failures %q do not mention %q", joined, test.expected)
			}
		})
	}
}

// checkWithoutBinary runs the reference and Pod checks, which need no wasmgate binary.
func checkWithoutBinary(t *testing.T, documents []Document) []error {
	t.Helper()
	cluster := NewCluster(documents, nil)
	options := CheckOptions{GateContainer: "wasmgate"}
	failures := CheckReferences(cluster)
	for _, gate := range FindGates(cluster, options, &failures) {
		checkGatePod(cluster, gate, options, &failures)
	}
	return failures
}

// wasmgateBinary returns $WASMGATE_BIN. Without it the test fails when CI is set, so that
// CI never passes by skipping, and is skipped otherwise.
func wasmgateBinary(t *testing.T) string {
	t.Helper()
	binary := os.Getenv("WASMGATE_BIN")
	if binary == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("WASMGATE_BIN is not set; scripts/test-deploy.sh sets it to the release binary")
		}
		t.Skip("WASMGATE_BIN is not set; scripts/test-deploy.sh sets it to the release binary")
	}
	return binary
}

func TestCheckConfigRunsMountedPolicy(t *testing.T) {
	binary := wasmgateBinary(t)
	documents, _ := decode(t, validRender)
	cluster := NewCluster(documents, nil)
	var failures Failures
	gates := FindGates(cluster, CheckOptions{GateContainer: "wasmgate"}, &failures)

	err := RunCheckConfig(cluster, gates[0], CheckOptions{Wasmgate: binary, Root: t.TempDir()})

	if err != nil {
		t.Errorf("valid arguments rejected: %v", err)
	}
}

func TestCheckConfigRejectsRenamedFlag(t *testing.T) {
	binary := wasmgateBinary(t)
	render := strings.Replace(validRender, `"--admin-listen"`, `"--admin-address"`, 1)
	documents, _ := decode(t, render)
	cluster := NewCluster(documents, nil)
	var failures Failures
	gates := FindGates(cluster, CheckOptions{GateContainer: "wasmgate"}, &failures)

	err := RunCheckConfig(cluster, gates[0], CheckOptions{Wasmgate: binary, Root: t.TempDir()})

	if err == nil {
		t.Fatal("renamed flag accepted")
	}
	if !strings.Contains(err.Error(), "exited with 64") {
		t.Errorf("error %q has no exit status 64", err)
	}
	if !strings.Contains(err.Error(), "unexpected argument '--admin-address'") {
		t.Errorf("error %q does not name the renamed flag", err)
	}
}

func TestCheckConfigRejectsInvalidPolicy(t *testing.T) {
	binary := wasmgateBinary(t)
	render := strings.Replace(validRender, `mode = "enforce"`, `mode = "enforcing"`, 1)
	documents, _ := decode(t, render)
	cluster := NewCluster(documents, nil)
	var failures Failures
	gates := FindGates(cluster, CheckOptions{GateContainer: "wasmgate"}, &failures)
	root := t.TempDir()

	err := RunCheckConfig(cluster, gates[0], CheckOptions{Wasmgate: binary, Root: root})

	if err == nil {
		t.Fatal("invalid policy accepted")
	}
	if !strings.Contains(err.Error(), "exited with 64") {
		t.Errorf("error %q has no exit status 64", err)
	}
	if !strings.Contains(err.Error(), "invalid configuration: --policy") {
		t.Errorf("error %q does not blame --policy", err)
	}
	written := filepath.Join(root, "gate", "etc", "wasmgate", "policy.toml")
	if content, readErr := os.ReadFile(written); readErr != nil || !strings.Contains(string(content), "enforcing") {
		t.Errorf("policy not written to %s: %v", written, readErr)
	}
}

func joinErrors(failures []error) string {
	messages := make([]string, len(failures))
	for index, failure := range failures {
		messages[index] = failure.Error()
	}
	return strings.Join(messages, "\n")
}
