package main

import (
	"fmt"
	"strconv"

	networkingv1 "k8s.io/api/networking/v1"
)

// ingress-nginx annotations that registry traffic needs. Without them nginx rejects blobs
// over 1 MiB with 413, spools whole uploads to disk before the gate receives a byte, buffers
// blob downloads in memory and on disk, and cuts requests after 60 seconds without a read
// or write.
const (
	annotationBodySize         = "nginx.ingress.kubernetes.io/proxy-body-size"
	annotationRequestBuffering = "nginx.ingress.kubernetes.io/proxy-request-buffering"
	annotationBuffering        = "nginx.ingress.kubernetes.io/proxy-buffering"
	annotationReadTimeout      = "nginx.ingress.kubernetes.io/proxy-read-timeout"
	annotationSendTimeout      = "nginx.ingress.kubernetes.io/proxy-send-timeout"
	annotationBackendProtocol  = "nginx.ingress.kubernetes.io/backend-protocol"
)

// checkIngressNginx checks that there is an Ingress and that each one carries the
// annotations above, with timeouts no shorter than the gate's own for the Pods behind it.
func checkIngressNginx(cluster *Cluster, gates []Gate, failures *Failures) {
	if len(cluster.Ingresses) == 0 {
		*failures = append(*failures, fmt.Errorf("no Ingress is rendered, but -ingress-nginx expects one"))
		return
	}
	for _, named := range cluster.Ingresses {
		annotations := named.Object.Annotations
		if value := annotations[annotationBodySize]; value != "0" {
			failures.Add(named.Document, "annotation %s is %q, expected \"0\" (no limit)", annotationBodySize, value)
		}
		for _, name := range []string{annotationRequestBuffering, annotationBuffering} {
			if value := annotations[name]; value != "off" {
				failures.Add(named.Document, "annotation %s is %q, expected \"off\"", name, value)
			}
		}
		readTimeout := timeoutAnnotation(named, annotationReadTimeout, failures)
		sendTimeout := timeoutAnnotation(named, annotationSendTimeout, failures)

		for _, gate := range gatesBehind(cluster, named, gates) {
			settings := gate.Settings
			if readTimeout != 0 && readTimeout <= max(settings.UpstreamResponseTimeout, settings.BodyIdleTimeout) {
				failures.Add(named.Document, "%s %d s is not above the gate's --upstream-response-timeout (%d s) and --body-idle-timeout (%d s), so nginx would cut a response the gate still waits for",
					annotationReadTimeout, readTimeout, settings.UpstreamResponseTimeout, settings.BodyIdleTimeout)
			}
			if sendTimeout != 0 && sendTimeout <= settings.BodyIdleTimeout {
				failures.Add(named.Document, "%s %d s is not above the gate's --body-idle-timeout (%d s)", annotationSendTimeout, sendTimeout, settings.BodyIdleTimeout)
			}
			if settings.TLSCert != "" && annotations[annotationBackendProtocol] != "HTTPS" {
				failures.Add(named.Document, "the gate of Deployment %q serves HTTPS, but annotation %s is not \"HTTPS\"", gate.Named.Object.Name, annotationBackendProtocol)
			}
		}
	}
}

// timeoutAnnotation returns a timeout annotation in seconds, or 0 after reporting it.
func timeoutAnnotation(named Named[*networkingv1.Ingress], name string, failures *Failures) int64 {
	text, found := named.Object.Annotations[name]
	seconds, err := strconv.ParseInt(text, 10, 64)
	if !found || err != nil || seconds <= 0 {
		failures.Add(named.Document, "annotation %s is %q, expected a positive number of seconds", name, text)
		return 0
	}
	return seconds
}

// gatesBehind returns the gates whose Pods the Ingress's backend Services select.
func gatesBehind(cluster *Cluster, named Named[*networkingv1.Ingress], gates []Gate) []Gate {
	var behind []Gate
	for _, backend := range ingressBackends(named.Object) {
		if backend.Service == nil {
			continue
		}
		service, _ := findServicePort(cluster, backend.Service.Name, backend.Service.Port.Number, backend.Service.Port.Name)
		if service == nil {
			continue
		}
		for _, gate := range gates {
			if ServiceSelects(service, gate.Named.Object) {
				behind = append(behind, gate)
			}
		}
	}
	return behind
}
