package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// CheckOptions are the command-line settings of `k8s-validate check`.
type CheckOptions struct {
	Wasmgate              string
	Root                  string
	GateContainer         string
	SecretFiles           map[string]string
	RequirePolicyChecksum bool
	IngressNginx          bool
}

// PolicyChecksumAnnotation is the Pod template annotation that the helm chart sets to the
// sha256 of the policy file, so that a policy change rolls the Pods.
const PolicyChecksumAnnotation = "checksum/policy"

// Gate is one Deployment whose Pod runs the gate container, with the settings that the
// container's arguments and environment give it.
type Gate struct {
	Named     Named[*appsv1.Deployment]
	Pod       *corev1.PodSpec
	Container *corev1.Container
	Settings  GateSettings
}

// GateSettings are the serve settings that the checks need, read from the container's
// arguments, then its environment, then wasmgate's defaults.
type GateSettings struct {
	Listen                  string
	AdminListen             string
	Upstream                string
	Policy                  string
	TLSCert                 string
	ShutdownGrace           int64
	BodyIdleTimeout         int64
	UpstreamResponseTimeout int64
}

// setting returns the last value of --name in args (as `--name value` or `--name=value`),
// else the value of the environment variable, else fallback.
func setting(container *corev1.Container, name, variable, fallback string) string {
	value, found := fallback, false
	for index, argument := range container.Args {
		if argument == "--"+name && index+1 < len(container.Args) {
			value, found = container.Args[index+1], true
		} else if after, ok := strings.CutPrefix(argument, "--"+name+"="); ok {
			value, found = after, true
		}
	}
	if found {
		return value
	}
	for _, env := range container.Env {
		if env.Name == variable && env.ValueFrom == nil {
			return env.Value
		}
	}
	return fallback
}

// readSettings reads the gate's settings; the defaults are wasmgate's documented ones.
func readSettings(container *corev1.Container) (GateSettings, error) {
	settings := GateSettings{
		Listen:      setting(container, "listen", "WASMGATE_LISTEN", "127.0.0.1:5050"),
		AdminListen: setting(container, "admin-listen", "WASMGATE_ADMIN_LISTEN", "127.0.0.1:9090"),
		Upstream:    setting(container, "upstream", "WASMGATE_UPSTREAM", "http://127.0.0.1:5000"),
		Policy:      setting(container, "policy", "WASMGATE_POLICY", ""),
		TLSCert:     setting(container, "tls-cert", "WASMGATE_TLS_CERT", ""),
	}
	seconds := []struct {
		flag, variable, fallback string
		target                   *int64
	}{
		{"shutdown-grace", "WASMGATE_SHUTDOWN_GRACE", "30", &settings.ShutdownGrace},
		{"body-idle-timeout", "WASMGATE_BODY_IDLE_TIMEOUT", "120", &settings.BodyIdleTimeout},
		{"upstream-response-timeout", "WASMGATE_UPSTREAM_RESPONSE_TIMEOUT", "300", &settings.UpstreamResponseTimeout},
	}
	for _, entry := range seconds {
		text := setting(container, entry.flag, entry.variable, entry.fallback)
		value, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return settings, fmt.Errorf("--%s %q is not a whole number of seconds", entry.flag, text)
		}
		*entry.target = value
	}
	return settings, nil
}

// FindGates returns every Deployment with a container named options.GateContainer.
func FindGates(cluster *Cluster, options CheckOptions, failures *Failures) []Gate {
	var gates []Gate
	for _, named := range cluster.Deployments {
		pod := &named.Object.Spec.Template.Spec
		index := slices.IndexFunc(pod.Containers, func(container corev1.Container) bool {
			return container.Name == options.GateContainer
		})
		if index < 0 {
			continue
		}
		container := &pod.Containers[index]
		settings, err := readSettings(container)
		if err != nil {
			failures.Add(named.Document, "container %q: %v", container.Name, err)
			continue
		}
		gates = append(gates, Gate{Named: named, Pod: pod, Container: container, Settings: settings})
	}
	return gates
}

// Check runs every check on a render and returns the failures.
func Check(cluster *Cluster, options CheckOptions) []error {
	failures := CheckReferences(cluster)
	gates := FindGates(cluster, options, &failures)
	if len(gates) == 0 {
		failures = append(failures, fmt.Errorf("no Deployment has a container named %q", options.GateContainer))
	}
	for _, gate := range gates {
		before := len(failures)
		checkGatePod(cluster, gate, options, &failures)
		if len(failures) == before {
			fmt.Printf("gate checks passed: Deployment %q\n", gate.Named.Object.Name)
		}
		if err := RunCheckConfig(cluster, gate, options); err != nil {
			failures.Add(gate.Named.Document, "%v", err)
		}
	}
	if options.IngressNginx {
		checkIngressNginx(cluster, gates, &failures)
	}
	return failures
}

func checkGatePod(cluster *Cluster, gate Gate, options CheckOptions, failures *Failures) {
	document, container := gate.Named.Document, gate.Container
	if len(container.Command) > 0 {
		failures.Add(document, "container %q sets command %q; the image's entrypoint `wasmgate serve` must stay", container.Name, container.Command)
	}
	listenPort := checkListenAddress(gate, "--listen", gate.Settings.Listen, failures)
	adminPort := checkListenAddress(gate, "--admin-listen", gate.Settings.AdminListen, failures)
	if adminPort != 0 {
		checkProbe(gate, "livenessProbe", container.LivenessProbe, "/healthz", adminPort, failures)
		checkProbe(gate, "readinessProbe", container.ReadinessProbe, "/readyz", adminPort, failures)
	}
	checkPolicyMount(cluster, gate, options, failures)
	checkSecurity(gate, failures)
	checkResources(gate, failures)
	checkTermination(gate, failures)
	checkFSGroupChangePolicy(gate, failures)
	checkSidecarRegistry(gate, failures)
	if listenPort != 0 {
		checkGateServices(cluster, gate, listenPort, adminPort, failures)
	}
	if adminPort != 0 {
		checkMetricsScrape(cluster, gate, adminPort, failures)
	}
	checkEgress(cluster, gate, failures)
}

// checkListenAddress checks that an address is reachable from outside the Pod and declared
// as a port of the gate container, and returns its port (0 when it is not usable).
func checkListenAddress(gate Gate, flagName, address string, failures *Failures) int32 {
	document := gate.Named.Document
	host, portText, err := net.SplitHostPort(address)
	if err != nil {
		failures.Add(document, "%s %q is not ADDR:PORT", flagName, address)
		return 0
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		failures.Add(document, "%s %q is a loopback address, which the kubelet and Services cannot reach", flagName, address)
	}
	port, err := strconv.ParseInt(portText, 10, 32)
	if err != nil {
		failures.Add(document, "%s %q has an invalid port", flagName, address)
		return 0
	}
	if !slices.ContainsFunc(gate.Container.Ports, func(declared corev1.ContainerPort) bool {
		return declared.ContainerPort == int32(port)
	}) {
		failures.Add(document, "%s port %d is not declared in the ports of container %q", flagName, port, gate.Container.Name)
	}
	return int32(port)
}

// checkProbe checks that a probe is an HTTP GET of path on the admin port.
func checkProbe(gate Gate, field string, probe *corev1.Probe, expectedPath string, adminPort int32, failures *Failures) {
	document := gate.Named.Document
	if probe == nil || probe.HTTPGet == nil {
		failures.Add(document, "container %q has no %s.httpGet", gate.Container.Name, field)
		return
	}
	get := probe.HTTPGet
	if get.Path != expectedPath {
		failures.Add(document, "%s.httpGet.path is %q, expected %q", field, get.Path, expectedPath)
	}
	if get.Scheme != "" && get.Scheme != corev1.URISchemeHTTP {
		failures.Add(document, "%s.httpGet.scheme is %s, but the admin listener serves plain HTTP", field, get.Scheme)
	}
	port := get.Port.IntVal
	if get.Port.Type == intstr.String {
		port = 0
		for _, declared := range gate.Container.Ports {
			if declared.Name == get.Port.StrVal {
				port = declared.ContainerPort
			}
		}
	}
	if port != adminPort {
		failures.Add(document, "%s.httpGet.port %s is port %d, but --admin-listen is on port %d", field, get.Port.String(), port, adminPort)
	}
}

// checkPolicyMount checks that --policy names a file of a ConfigMap volume mounted at the
// file's directory, and that the checksum annotation matches that file.
func checkPolicyMount(cluster *Cluster, gate Gate, options CheckOptions, failures *Failures) {
	document, policy := gate.Named.Document, gate.Settings.Policy
	if policy == "" {
		failures.Add(document, "container %q has no --policy", gate.Container.Name)
		return
	}
	directory, key := path.Dir(policy), path.Base(policy)
	mountIndex := slices.IndexFunc(gate.Container.VolumeMounts, func(mount corev1.VolumeMount) bool {
		return path.Clean(mount.MountPath) == directory && mount.SubPath == ""
	})
	if mountIndex < 0 {
		failures.Add(document, "no volume is mounted at %q, the directory of --policy %q", directory, policy)
		return
	}
	mount := gate.Container.VolumeMounts[mountIndex]
	volumeIndex := slices.IndexFunc(gate.Pod.Volumes, func(volume corev1.Volume) bool { return volume.Name == mount.Name })
	if volumeIndex < 0 || gate.Pod.Volumes[volumeIndex].ConfigMap == nil {
		failures.Add(document, "volume %q mounted at %q is not a ConfigMap volume", mount.Name, directory)
		return
	}
	source := gate.Pod.Volumes[volumeIndex].ConfigMap
	dataKey := key
	if len(source.Items) > 0 {
		itemIndex := slices.IndexFunc(source.Items, func(item corev1.KeyToPath) bool { return path.Clean(item.Path) == key })
		if itemIndex < 0 {
			failures.Add(document, "volume %q has items, but none is written to %q", mount.Name, key)
			return
		}
		dataKey = source.Items[itemIndex].Key
	}
	configMap, found := cluster.ConfigMaps[source.Name]
	if !found {
		return // reported by CheckReferences
	}
	content, found := configMap.Data[dataKey]
	if !found {
		failures.Add(document, "ConfigMap %q has no key %q for --policy %q", source.Name, dataKey, policy)
		return
	}

	annotation, annotated := gate.Named.Object.Spec.Template.Annotations[PolicyChecksumAnnotation]
	if options.RequirePolicyChecksum && !annotated {
		failures.Add(document, "the Pod template has no %s annotation", PolicyChecksumAnnotation)
	}
	sum := sha256.Sum256([]byte(content))
	if expected := hex.EncodeToString(sum[:]); annotated && annotation != expected {
		failures.Add(document, "annotation %s is %q, but the sha256 of the policy file is %q", PolicyChecksumAnnotation, annotation, expected)
	}
}

// checkSecurity checks the hardening of every container of the Pod, not only the gate's:
// a sidecar registry runs in the same Pod.
func checkSecurity(gate Gate, failures *Failures) {
	document, pod := gate.Named.Document, gate.Pod
	podContext := pod.SecurityContext
	if podContext == nil {
		podContext = &corev1.PodSecurityContext{}
	}
	if podContext.RunAsNonRoot == nil || !*podContext.RunAsNonRoot {
		failures.Add(document, "spec.template.spec.securityContext.runAsNonRoot is not true")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		failures.Add(document, "automountServiceAccountToken is not false, but the gate never calls the Kubernetes API")
	}
	for _, container := range allContainers(pod) {
		context := container.SecurityContext
		if context == nil {
			failures.Add(document, "container %q has no securityContext", container.Name)
			continue
		}
		if context.RunAsNonRoot != nil && !*context.RunAsNonRoot {
			failures.Add(document, "container %q sets runAsNonRoot false", container.Name)
		}
		userID := context.RunAsUser
		if userID == nil {
			userID = podContext.RunAsUser
		}
		if userID == nil || *userID == 0 {
			failures.Add(document, "container %q has no numeric non-root runAsUser", container.Name)
		}
		if context.ReadOnlyRootFilesystem == nil || !*context.ReadOnlyRootFilesystem {
			failures.Add(document, "container %q: readOnlyRootFilesystem is not true", container.Name)
		}
		if context.AllowPrivilegeEscalation == nil || *context.AllowPrivilegeEscalation {
			failures.Add(document, "container %q: allowPrivilegeEscalation is not false", container.Name)
		}
		if context.Privileged != nil && *context.Privileged {
			failures.Add(document, "container %q is privileged", container.Name)
		}
		if context.Capabilities == nil || !slices.Contains(context.Capabilities.Drop, "ALL") {
			failures.Add(document, "container %q does not drop ALL capabilities", container.Name)
		} else if len(context.Capabilities.Add) > 0 {
			failures.Add(document, "container %q adds capabilities %q", container.Name, context.Capabilities.Add)
		}
		seccomp := context.SeccompProfile
		if seccomp == nil {
			seccomp = podContext.SeccompProfile
		}
		if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			failures.Add(document, "container %q: seccompProfile is not RuntimeDefault", container.Name)
		}
	}
}

// checkResources checks that every container requests CPU and memory and has a memory
// limit. A CPU limit is left to the operator, because CFS throttling stalls streaming.
func checkResources(gate Gate, failures *Failures) {
	for _, container := range allContainers(gate.Pod) {
		resources := container.Resources
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, found := resources.Requests[name]; !found {
				failures.Add(gate.Named.Document, "container %q has no resources.requests.%s", container.Name, name)
			}
		}
		if _, found := resources.Limits[corev1.ResourceMemory]; !found {
			failures.Add(gate.Named.Document, "container %q has no resources.limits.memory", container.Name)
		}
	}
}

// terminationGrace returns the Pod's terminationGracePeriodSeconds or the Kubernetes default.
func terminationGrace(pod *corev1.PodSpec) int64 {
	if pod.TerminationGracePeriodSeconds != nil {
		return *pod.TerminationGracePeriodSeconds
	}
	return int64(corev1.DefaultTerminationGracePeriodSeconds)
}

// preStopSleep returns the seconds of a container's preStop sleep action, 0 without a
// preStop hook, and found=false for a preStop hook that is not a sleep.
func preStopSleep(container *corev1.Container) (seconds int64, found bool) {
	lifecycle := container.Lifecycle
	if lifecycle == nil || lifecycle.PreStop == nil {
		return 0, true
	}
	if lifecycle.PreStop.Sleep == nil {
		return 0, false
	}
	return lifecycle.PreStop.Sleep.Seconds, true
}

// checkTermination checks that Kubernetes waits for the preStop sleep plus the gate's own
// drain (--shutdown-grace) before it kills the container.
func checkTermination(gate Gate, failures *Failures) {
	grace := terminationGrace(gate.Pod)
	preStop, isSleep := preStopSleep(gate.Container)
	if !isSleep {
		failures.Add(gate.Named.Document, "the preStop hook of container %q is not a sleep; the image has no shell", gate.Container.Name)
	}
	if needed := preStop + gate.Settings.ShutdownGrace; grace <= needed {
		failures.Add(gate.Named.Document, "terminationGracePeriodSeconds %d is not above the preStop sleep (%d s) plus --shutdown-grace (%d s)", grace, preStop, gate.Settings.ShutdownGrace)
	}
}

// checkFSGroupChangePolicy checks that a Pod which sets fsGroup on a PersistentVolumeClaim
// uses fsGroupChangePolicy OnRootMismatch. The default, Always, changes the ownership of
// every file on the volume at each start, which slows the start on a registry's storage.
func checkFSGroupChangePolicy(gate Gate, failures *Failures) {
	context := gate.Pod.SecurityContext
	if context == nil || context.FSGroup == nil {
		return
	}
	hasClaim := slices.ContainsFunc(gate.Pod.Volumes, func(volume corev1.Volume) bool {
		return volume.PersistentVolumeClaim != nil
	})
	policy := context.FSGroupChangePolicy
	if hasClaim && (policy == nil || *policy != corev1.FSGroupChangeOnRootMismatch) {
		failures.Add(gate.Named.Document, "the Pod sets fsGroup on a PersistentVolumeClaim without fsGroupChangePolicy OnRootMismatch, so every start changes the ownership of every stored file")
	}
}

// checkSidecarRegistry checks a registry container in the gate's Pod, recognised by
// Distribution's REGISTRY_HTTP_ADDR. It must listen on loopback only, so that clients
// cannot bypass the gate, and be the gate's upstream. Its debug server (metrics and pprof)
// must be on loopback too. It must keep serving until the gate has drained, then drain
// itself before terminationGracePeriodSeconds runs out.
func checkSidecarRegistry(gate Gate, failures *Failures) {
	document := gate.Named.Document
	containers := allContainers(gate.Pod)
	for index := range containers {
		container := &containers[index]
		address, found := plainEnv(container, "REGISTRY_HTTP_ADDR")
		if !found {
			continue
		}
		if !isLoopbackAddress(address) {
			failures.Add(document, "container %q listens on %q; a registry beside the gate must listen on loopback only", container.Name, address)
		}
		upstream, err := url.Parse(gate.Settings.Upstream)
		if err != nil || upstream.Scheme != "http" || upstream.Host != address {
			failures.Add(document, "--upstream %q is not http://%s, where container %q listens", gate.Settings.Upstream, address, container.Name)
		}
		if len(container.Ports) > 0 {
			failures.Add(document, "container %q declares ports, but only the gate's ports should be reachable", container.Name)
		}
		// registry:3's built-in config sets http.debug.addr to :5001, every interface.
		if debug, found := plainEnv(container, "REGISTRY_HTTP_DEBUG_ADDR"); !found || !isLoopbackAddress(debug) {
			failures.Add(document, "container %q: REGISTRY_HTTP_DEBUG_ADDR is %s; set a loopback address such as 127.0.0.1:5001, because the image's default :5001 serves metrics and pprof on every interface", container.Name, describeEnv(debug, found))
		}
		checkSidecarRegistryShutdown(gate, container, failures)
	}
}

// checkSidecarRegistryShutdown checks the registry's preStop sleep and drain timeout against
// the gate's shutdown and the Pod's terminationGracePeriodSeconds.
func checkSidecarRegistryShutdown(gate Gate, container *corev1.Container, failures *Failures) {
	document := gate.Named.Document
	gatePreStop, _ := preStopSleep(gate.Container) // a non-sleep hook is reported by checkTermination
	gateDrained := gatePreStop + gate.Settings.ShutdownGrace
	registryPreStop, isSleep := preStopSleep(container)
	if !isSleep {
		failures.Add(document, "the preStop hook of container %q is not a sleep", container.Name)
	}
	if registryPreStop < gateDrained {
		failures.Add(document, "container %q has a preStop sleep of %d s, below the gate's preStop sleep plus --shutdown-grace (%d s), so the registry stops while the gate still forwards to it", container.Name, registryPreStop, gateDrained)
	}

	text, found := plainEnv(container, "REGISTRY_HTTP_DRAINTIMEOUT")
	drain, err := time.ParseDuration(text)
	if !found || err != nil || drain <= 0 {
		failures.Add(document, "container %q: REGISTRY_HTTP_DRAINTIMEOUT is %s; set a positive duration such as 5s, because Distribution's default of 0 closes in-flight requests at SIGTERM", container.Name, describeEnv(text, found))
		return
	}
	drainSeconds := int64(math.Ceil(drain.Seconds()))
	if grace := terminationGrace(gate.Pod); registryPreStop+drainSeconds >= grace {
		failures.Add(document, "container %q: its preStop sleep (%d s) plus REGISTRY_HTTP_DRAINTIMEOUT (%s) is not below terminationGracePeriodSeconds %d", container.Name, registryPreStop, text, grace)
	}
}

// plainEnv returns the literal value of an environment variable of a container.
func plainEnv(container *corev1.Container, name string) (string, bool) {
	for _, env := range container.Env {
		if env.Name == name && env.ValueFrom == nil {
			return env.Value, true
		}
	}
	return "", false
}

// describeEnv quotes a value for a message, or returns "not set" for a missing variable.
func describeEnv(value string, found bool) string {
	if !found {
		return "not set"
	}
	return strconv.Quote(value)
}

// isLoopbackAddress reports whether HOST:PORT has a loopback IP address as its host.
func isLoopbackAddress(address string) bool {
	host, _, err := net.SplitHostPort(address)
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}

// checkGateServices checks that every Service in front of the gate's Pod sends traffic to
// the gate's listener or admin port, never to another container, and that one sends
// clients to the listener.
func checkGateServices(cluster *Cluster, gate Gate, listenPort, adminPort int32, failures *Failures) {
	reachesListener := false
	for _, named := range cluster.Services {
		if !ServiceSelects(named.Object, gate.Named.Object) {
			continue
		}
		for _, port := range named.Object.Spec.Ports {
			container, number, found := ContainerPortFor(gate.Pod, serviceTarget(port))
			if !found {
				continue // reported by CheckReferences
			}
			if container != gate.Container.Name || (number != listenPort && number != adminPort) {
				failures.Add(named.Document, "port %q targets port %d of container %q instead of the gate's port %d", port.Name, number, container, listenPort)
			}
			reachesListener = reachesListener || (container == gate.Container.Name && number == listenPort)
		}
	}
	if !reachesListener {
		failures.Add(gate.Named.Document, "no rendered Service sends traffic to the gate's port %d", listenPort)
	}
}

// checkMetricsScrape checks every ServiceMonitor endpoint that reaches the gate's Pod: the
// Service port it scrapes must send traffic to the admin port, which alone serves /metrics,
// and the path must be /metrics (Prometheus's default when empty).
func checkMetricsScrape(cluster *Cluster, gate Gate, adminPort int32, failures *Failures) {
	for _, monitor := range cluster.ServiceMonitors {
		selector, err := metav1.LabelSelectorAsSelector(&monitor.Object.Spec.Selector)
		if err != nil || selector.Empty() {
			continue // reported by CheckReferences
		}
		for _, service := range cluster.Services {
			if !selector.Matches(labels.Set(service.Object.Labels)) || !ServiceSelects(service.Object, gate.Named.Object) {
				continue
			}
			for _, endpoint := range monitor.Object.Spec.Endpoints {
				if endpoint.Path != "" && endpoint.Path != "/metrics" {
					failures.Add(monitor.Document, "endpoint port %q scrapes path %q, but the gate serves metrics at /metrics", endpoint.Port, endpoint.Path)
				}
				_, port := findServicePort(cluster, service.Object.Name, 0, endpoint.Port)
				if port == nil {
					continue // reported by CheckReferences
				}
				container, number, found := ContainerPortFor(gate.Pod, serviceTarget(*port))
				if found && (container != gate.Container.Name || number != adminPort) {
					failures.Add(service.Document, "port %q, scraped by ServiceMonitor %q, targets port %d of container %q instead of the gate's admin port %d", port.Name, monitor.Object.Name, number, container, adminPort)
				}
			}
		}
	}
}
