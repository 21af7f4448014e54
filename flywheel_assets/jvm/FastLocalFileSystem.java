package flywheel;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.attribute.PosixFilePermission;
import java.util.EnumSet;
import java.util.Set;

import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.hadoop.fs.permission.FsPermission;
import org.apache.hadoop.util.Progressable;

/**
 * Hadoop's local file system for the local Spark server, with permissions set through Java NIO.
 *
 * Without Hadoop's native library (pip's PySpark has none), RawLocalFileSystem sets the mode of
 * every file and folder it creates by running a `chmod` process: about 3.6 ms per file, most of
 * the time of writing a 256-bucket table (docs/benchmarks.md). The same mode bits, set in-process.
 *
 * Parquet writes page headers and footers a byte at a time (Thrift), and each byte written to a
 * Hadoop stream takes a lock and updates the file system's per-thread statistics. Files are
 * created with a plain buffer in front, so those costs are paid once per 64 KB instead.
 */
public class FastLocalFileSystem extends RawLocalFileSystem {
  // PosixFilePermission in the order of the mode bits, lowest first
  private static final PosixFilePermission[] BITS = {
    PosixFilePermission.OTHERS_EXECUTE, PosixFilePermission.OTHERS_WRITE, PosixFilePermission.OTHERS_READ,
    PosixFilePermission.GROUP_EXECUTE, PosixFilePermission.GROUP_WRITE, PosixFilePermission.GROUP_READ,
    PosixFilePermission.OWNER_EXECUTE, PosixFilePermission.OWNER_WRITE, PosixFilePermission.OWNER_READ};

  @Override
  public void setPermission(Path p, FsPermission permission) throws IOException {
    short mode = permission.toShort();
    Set<PosixFilePermission> perms = EnumSet.noneOf(PosixFilePermission.class);
    for (int i = 0; i < BITS.length; i++) {
      if ((mode & (1 << i)) != 0) {
        perms.add(BITS[i]);
      }
    }
    Files.setPosixFilePermissions(pathToFile(p).toPath(), perms);
  }

  @Override
  public FSDataOutputStream create(Path f, boolean overwrite, int bufferSize, short replication, long blockSize,
                                   Progressable progress) throws IOException {
    return buffered(super.create(f, overwrite, bufferSize, replication, blockSize, progress));
  }

  @Override
  public FSDataOutputStream create(Path f, FsPermission permission, boolean overwrite, int bufferSize,
                                   short replication, long blockSize, Progressable progress) throws IOException {
    return buffered(super.create(f, permission, overwrite, bufferSize, replication, blockSize, progress));
  }

  private static FSDataOutputStream buffered(FSDataOutputStream out) throws IOException {
    // the outer stream counts every byte for getPos(); the buffer sits below it, and the inner
    // stream still counts the bytes written in the file system's statistics
    return new FSDataOutputStream(new Buffer(out), null);
  }

  /** Unsynchronized buffer: a task's file is written by one thread. */
  private static final class Buffer extends OutputStream {
    private final FSDataOutputStream out;
    private final byte[] buf = new byte[64 * 1024];
    private int count;

    Buffer(FSDataOutputStream out) {
      this.out = out;
    }

    @Override
    public void write(int b) throws IOException {
      if (count == buf.length) {
        drain();
      }
      buf[count++] = (byte) b;
    }

    @Override
    public void write(byte[] b, int off, int len) throws IOException {
      if (len >= buf.length) {
        drain();
        out.write(b, off, len);
        return;
      }
      if (len > buf.length - count) {
        drain();
      }
      System.arraycopy(b, off, buf, count, len);
      count += len;
    }

    private void drain() throws IOException {
      if (count > 0) {
        out.write(buf, 0, count);
        count = 0;
      }
    }

    @Override
    public void flush() throws IOException {
      drain();
      out.flush();
    }

    @Override
    public void close() throws IOException {
      try {
        drain();
      } finally {
        out.close();
      }
    }
  }
}
