package main

import (
	"fmt"
	"slices"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Cluster is what one render would create, plus objects that the render expects to exist
// already. All objects are taken to share one namespace, as both tools render them.
type Cluster struct {
	Documents       []Document // rendered objects only
	ConfigMaps      map[string]*corev1.ConfigMap
	ServiceAccounts map[string]bool
	Deployments     []Named[*appsv1.Deployment]
	Services        []Named[*corev1.Service]
	Ingresses       []Named[*networkingv1.Ingress]
	Autoscalers     []Named[*autoscalingv2.HorizontalPodAutoscaler]
	Budgets         []Named[*policyv1.PodDisruptionBudget]
	ServiceMonitors []Named[*monitoringv1.ServiceMonitor]
	NetworkPolicies []Named[*networkingv1.NetworkPolicy]
}

// Named pairs a typed object with the document it came from, for messages.
type Named[T any] struct {
	Document Document
	Object   T
}

// NewCluster indexes the rendered documents and the existing ones by kind.
func NewCluster(rendered, existing []Document) *Cluster {
	cluster := &Cluster{
		Documents:       rendered,
		ConfigMaps:      map[string]*corev1.ConfigMap{},
		ServiceAccounts: map[string]bool{},
	}
	for _, document := range append(slices.Clone(rendered), existing...) {
		switch object := document.Object.(type) {
		case *corev1.ConfigMap:
			cluster.ConfigMaps[object.Name] = object
		case *corev1.ServiceAccount:
			cluster.ServiceAccounts[object.Name] = true
		case *appsv1.Deployment:
			cluster.Deployments = append(cluster.Deployments, Named[*appsv1.Deployment]{document, object})
		case *corev1.Service:
			cluster.Services = append(cluster.Services, Named[*corev1.Service]{document, object})
		case *networkingv1.Ingress:
			cluster.Ingresses = append(cluster.Ingresses, Named[*networkingv1.Ingress]{document, object})
		case *autoscalingv2.HorizontalPodAutoscaler:
			cluster.Autoscalers = append(cluster.Autoscalers, Named[*autoscalingv2.HorizontalPodAutoscaler]{document, object})
		case *policyv1.PodDisruptionBudget:
			cluster.Budgets = append(cluster.Budgets, Named[*policyv1.PodDisruptionBudget]{document, object})
		case *monitoringv1.ServiceMonitor:
			cluster.ServiceMonitors = append(cluster.ServiceMonitors, Named[*monitoringv1.ServiceMonitor]{document, object})
		case *networkingv1.NetworkPolicy:
			cluster.NetworkPolicies = append(cluster.NetworkPolicies, Named[*networkingv1.NetworkPolicy]{document, object})
		}
	}
	return cluster
}

// Failures collects check failures, each naming the document it is about.
type Failures []error

func (failures *Failures) Add(document Document, format string, arguments ...any) {
	*failures = append(*failures, fmt.Errorf("%s: %s", document, fmt.Sprintf(format, arguments...)))
}

// selects reports whether a label selector picks the Pods of a Deployment. An empty selector
// is reported as false because none of these objects should select every Pod.
func selects(selector *metav1.LabelSelector, deployment *appsv1.Deployment) bool {
	if selector == nil || (len(selector.MatchLabels) == 0 && len(selector.MatchExpressions) == 0) {
		return false
	}
	parsed, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return false
	}
	return parsed.Matches(labels.Set(deployment.Spec.Template.Labels))
}

// ServiceSelects reports whether a Service's selector picks the Pods of a Deployment.
func ServiceSelects(service *corev1.Service, deployment *appsv1.Deployment) bool {
	if len(service.Spec.Selector) == 0 {
		return false
	}
	return labels.SelectorFromSet(service.Spec.Selector).Matches(labels.Set(deployment.Spec.Template.Labels))
}

// ContainerPortFor resolves a Service targetPort or a probe port to the container and port
// number it reaches in a Pod: a number matches any container's declared port, a name the
// port of that name. It returns the container name and the port, or found=false.
func ContainerPortFor(pod *corev1.PodSpec, target intstr.IntOrString) (container string, port int32, found bool) {
	for _, candidate := range allContainers(pod) {
		for _, declared := range candidate.Ports {
			if target.Type == intstr.Int && declared.ContainerPort == target.IntVal {
				return candidate.Name, declared.ContainerPort, true
			}
			if target.Type == intstr.String && declared.Name != "" && declared.Name == target.StrVal {
				return candidate.Name, declared.ContainerPort, true
			}
		}
	}
	return "", 0, false
}

// allContainers lists the app containers and the init containers, since a native sidecar
// (an init container with restartPolicy Always) serves traffic too.
func allContainers(pod *corev1.PodSpec) []corev1.Container {
	return append(slices.Clone(pod.InitContainers), pod.Containers...)
}

// serviceTarget is the targetPort that a Service port sends to; Kubernetes defaults it to
// the port itself.
func serviceTarget(port corev1.ServicePort) intstr.IntOrString {
	if port.TargetPort.Type == intstr.String && port.TargetPort.StrVal == "" ||
		port.TargetPort.Type == intstr.Int && port.TargetPort.IntVal == 0 {
		return intstr.FromInt32(port.Port)
	}
	return port.TargetPort
}

// CheckReferences checks that the objects of a render fit together: selectors pick a Pod,
// ports and backends resolve, and referenced ConfigMaps and ServiceAccounts exist.
func CheckReferences(cluster *Cluster) Failures {
	var failures Failures
	for _, deployment := range cluster.Deployments {
		checkDeploymentReferences(cluster, deployment, &failures)
	}
	for _, service := range cluster.Services {
		checkServiceReferences(cluster, service, &failures)
	}
	for _, ingress := range cluster.Ingresses {
		checkIngressReferences(cluster, ingress, &failures)
	}
	for _, autoscaler := range cluster.Autoscalers {
		checkAutoscalerReferences(cluster, autoscaler, &failures)
	}
	for _, budget := range cluster.Budgets {
		checkBudgetReferences(cluster, budget, &failures)
	}
	for _, monitor := range cluster.ServiceMonitors {
		checkServiceMonitorReferences(cluster, monitor, &failures)
	}
	for _, policy := range cluster.NetworkPolicies {
		checkNetworkPolicyReferences(cluster, policy, &failures)
	}
	return failures
}

// checkNetworkPolicyReferences checks that a NetworkPolicy selects a rendered Pod and that
// each named port of its ingress rules is a port of the selected Pods. A named port that no
// container declares matches nothing, so the rule silently admits no traffic.
func checkNetworkPolicyReferences(cluster *Cluster, named Named[*networkingv1.NetworkPolicy], failures *Failures) {
	policy := named.Object
	matched := false
	for _, deployment := range cluster.Deployments {
		if !selects(&policy.Spec.PodSelector, deployment.Object) {
			continue
		}
		matched = true
		pod := &deployment.Object.Spec.Template.Spec
		for ruleIndex, rule := range policy.Spec.Ingress {
			for _, port := range rule.Ports {
				if port.Port == nil || port.Port.Type != intstr.String {
					continue
				}
				if !declaresNamedPort(pod, port.Port.StrVal, port.Protocol) {
					failures.Add(named.Document, "spec.ingress[%d] admits port %q, which no container of Deployment %q declares", ruleIndex, port.Port.StrVal, deployment.Object.Name)
				}
			}
		}
	}
	if !matched {
		failures.Add(named.Document, "spec.podSelector selects no rendered Deployment's Pods")
	}
}

// declaresNamedPort reports whether a container of the Pod declares a port of that name
// and protocol; an empty protocol is TCP, as in both APIs.
func declaresNamedPort(pod *corev1.PodSpec, name string, protocol *corev1.Protocol) bool {
	wanted := corev1.ProtocolTCP
	if protocol != nil && *protocol != "" {
		wanted = *protocol
	}
	for _, container := range allContainers(pod) {
		for _, declared := range container.Ports {
			declaredProtocol := declared.Protocol
			if declaredProtocol == "" {
				declaredProtocol = corev1.ProtocolTCP
			}
			if declared.Name == name && declaredProtocol == wanted {
				return true
			}
		}
	}
	return false
}

func checkDeploymentReferences(cluster *Cluster, named Named[*appsv1.Deployment], failures *Failures) {
	deployment := named.Object
	if !selects(deployment.Spec.Selector, deployment) {
		failures.Add(named.Document, "spec.selector does not match the labels of spec.template")
	}
	pod := &deployment.Spec.Template.Spec
	if account := pod.ServiceAccountName; account != "" && account != "default" && !cluster.ServiceAccounts[account] {
		failures.Add(named.Document, "serviceAccountName %q is neither rendered nor supplied with -existing", account)
	}
	for _, volume := range pod.Volumes {
		source := volume.ConfigMap
		if source == nil || (source.Optional != nil && *source.Optional) {
			continue
		}
		configMap, found := cluster.ConfigMaps[source.Name]
		if !found {
			failures.Add(named.Document, "volume %q refers to ConfigMap %q, which is neither rendered nor supplied with -existing", volume.Name, source.Name)
			continue
		}
		for _, item := range source.Items {
			if _, found := configMap.Data[item.Key]; !found {
				failures.Add(named.Document, "volume %q maps key %q, which ConfigMap %q does not have", volume.Name, item.Key, source.Name)
			}
		}
	}
}

func checkServiceReferences(cluster *Cluster, named Named[*corev1.Service], failures *Failures) {
	service := named.Object
	matched := false
	for _, deployment := range cluster.Deployments {
		if !ServiceSelects(service, deployment.Object) {
			continue
		}
		matched = true
		for _, port := range service.Spec.Ports {
			target := serviceTarget(port)
			if _, _, found := ContainerPortFor(&deployment.Object.Spec.Template.Spec, target); !found {
				failures.Add(named.Document, "port %q targets %s, which no container of Deployment %q declares", port.Name, target.String(), deployment.Object.Name)
			}
		}
	}
	if !matched {
		failures.Add(named.Document, "spec.selector selects no rendered Deployment's Pods")
	}
}

// findServicePort returns the port of a rendered Service named by an Ingress or
// ServiceMonitor, by number or by name.
func findServicePort(cluster *Cluster, serviceName string, number int32, portName string) (*corev1.Service, *corev1.ServicePort) {
	for _, named := range cluster.Services {
		if named.Object.Name != serviceName {
			continue
		}
		for index := range named.Object.Spec.Ports {
			port := &named.Object.Spec.Ports[index]
			if (number != 0 && port.Port == number) || (portName != "" && port.Name == portName) {
				return named.Object, port
			}
		}
		return named.Object, nil
	}
	return nil, nil
}

func checkIngressReferences(cluster *Cluster, named Named[*networkingv1.Ingress], failures *Failures) {
	for _, backend := range ingressBackends(named.Object) {
		if backend.Service == nil {
			failures.Add(named.Document, "a backend is not a Service; only Service backends are expected")
			continue
		}
		service, port := findServicePort(cluster, backend.Service.Name, backend.Service.Port.Number, backend.Service.Port.Name)
		switch {
		case service == nil:
			failures.Add(named.Document, "backend Service %q is not rendered", backend.Service.Name)
		case port == nil:
			failures.Add(named.Document, "backend Service %q has no port %d/%q", backend.Service.Name, backend.Service.Port.Number, backend.Service.Port.Name)
		}
	}
	for index, tls := range named.Object.Spec.TLS {
		if tls.SecretName == "" {
			failures.Add(named.Document, "spec.tls[%d].secretName is empty", index)
		}
	}
}

// ingressBackends lists the default backend and every path's backend.
func ingressBackends(ingress *networkingv1.Ingress) []networkingv1.IngressBackend {
	var backends []networkingv1.IngressBackend
	if ingress.Spec.DefaultBackend != nil {
		backends = append(backends, *ingress.Spec.DefaultBackend)
	}
	for _, rule := range ingress.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		for _, path := range rule.HTTP.Paths {
			backends = append(backends, path.Backend)
		}
	}
	return backends
}

func checkAutoscalerReferences(cluster *Cluster, named Named[*autoscalingv2.HorizontalPodAutoscaler], failures *Failures) {
	target := named.Object.Spec.ScaleTargetRef
	for _, deployment := range cluster.Deployments {
		if target.Kind == "Deployment" && target.APIVersion == "apps/v1" && target.Name == deployment.Object.Name {
			// A fixed replica count fights the autoscaler on every apply.
			if deployment.Object.Spec.Replicas != nil {
				failures.Add(deployment.Document, "spec.replicas is set although HorizontalPodAutoscaler %q scales it", named.Object.Name)
			}
			return
		}
	}
	failures.Add(named.Document, "scaleTargetRef %s %s %q is not a rendered Deployment", target.APIVersion, target.Kind, target.Name)
}

func checkBudgetReferences(cluster *Cluster, named Named[*policyv1.PodDisruptionBudget], failures *Failures) {
	budget := named.Object.Spec
	for _, deployment := range cluster.Deployments {
		if !selects(budget.Selector, deployment.Object) {
			continue
		}
		replicas := int32(1)
		if deployment.Object.Spec.Replicas != nil {
			replicas = *deployment.Object.Spec.Replicas
		}
		// With one replica, minAvailable 1 or maxUnavailable 0 blocks every node drain.
		blocks := budget.MaxUnavailable != nil && budget.MaxUnavailable.String() == "0" ||
			budget.MinAvailable != nil && budget.MinAvailable.Type == intstr.Int && budget.MinAvailable.IntVal >= replicas
		if blocks && len(cluster.Autoscalers) == 0 {
			failures.Add(named.Document, "the budget allows no eviction of Deployment %q with %d replicas, so node drains would hang", deployment.Object.Name, replicas)
		}
		return
	}
	failures.Add(named.Document, "spec.selector selects no rendered Deployment's Pods")
}

func checkServiceMonitorReferences(cluster *Cluster, named Named[*monitoringv1.ServiceMonitor], failures *Failures) {
	monitor := named.Object
	selector, err := metav1.LabelSelectorAsSelector(&monitor.Spec.Selector)
	if err != nil || selector.Empty() {
		failures.Add(named.Document, "spec.selector is empty or invalid")
		return
	}
	var matched []*corev1.Service
	for _, service := range cluster.Services {
		if selector.Matches(labels.Set(service.Object.Labels)) {
			matched = append(matched, service.Object)
		}
	}
	if len(matched) != 1 {
		failures.Add(named.Document, "spec.selector matches %d rendered Services; exactly 1 is expected", len(matched))
		return
	}
	for _, endpoint := range monitor.Spec.Endpoints {
		if endpoint.Port == "" {
			failures.Add(named.Document, "an endpoint has no port name")
			continue
		}
		if _, port := findServicePort(cluster, matched[0].Name, 0, endpoint.Port); port == nil {
			failures.Add(named.Document, "endpoint port %q is not a port of Service %q", endpoint.Port, matched[0].Name)
		}
	}
}
