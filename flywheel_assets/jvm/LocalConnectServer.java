package flywheel;

import java.net.InetSocketAddress;

import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.connect.service.SparkConnectService$;
import org.slf4j.LoggerFactory;

/**
 * The local Spark server's main class: Spark's SparkConnectServer, less per-session artifact
 * isolation.
 *
 * SparkConnectServer turns isolation on in its main (so no --conf can turn it off): every Spark
 * Connect session then runs its queries, on the driver and in the executor, under class loaders
 * of its own, and Spark's cache of compiled generated code is keyed by class loader. Every
 * session, one per step and per split job, compiled its own copy of every class (386 Janino
 * compilations a `flywheel run`), and the JIT compiled each anew. Isolation keeps the jars and
 * classes one client uploads from another client's sessions. No flywheel client uploads any, and
 * this server is one user's, on 127.0.0.1.
 */
public final class LocalConnectServer {
  private LocalConnectServer() {}

  public static void main(String[] args) throws Exception {
    SparkSession session = SparkSession.builder()
        .config("spark.sql.artifact.isolation.enabled", false)
        .config("spark.sql.artifact.isolation.alwaysApplyClassloader", false)
        .getOrCreate();
    SparkConnectService$.MODULE$.start(session.sparkContext());
    InetSocketAddress address = SparkConnectService$.MODULE$.bindingAddress();
    LoggerFactory.getLogger(LocalConnectServer.class)
        .info("Spark Connect server started at: {}:{}", address.getAddress().getHostAddress(), address.getPort());
    SparkConnectService$.MODULE$.server().awaitTermination();
  }
}
