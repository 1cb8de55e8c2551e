# Zipkin's server (its exec jar from Maven Central) on Debian's JRE, for the zipkin-ui variant;
# JAVA_OPTS as the upstream image reads it.
ARG BASE
FROM ${BASE}
COPY zipkin.jar /zipkin/zipkin.jar
USER 10001:10001
EXPOSE 9411
ENTRYPOINT ["sh", "-c", "exec java $JAVA_OPTS -jar /zipkin/zipkin.jar"]
