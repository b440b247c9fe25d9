// Reads file paths from stdin, one a line; for each prints one line with what java.util.Properties
// reads from the file as strict UTF-8: "OK" then key=value pairs as hex UTF-16 code units, sorted,
// or "ERR" and the exception.  Used by the differential test of floatingip.properties.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.Reader;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Properties;
import java.util.TreeMap;

public class PropertiesOracle {
    private static String hex(String s) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < s.length(); i++) {
            b.append(String.format("%04x", (int) s.charAt(i)));
        }
        return b.toString();
    }

    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String path;
        while ((path = in.readLine()) != null) {
            StringBuilder out = new StringBuilder();
            try (Reader reader = new InputStreamReader(Files.newInputStream(Paths.get(path)),
                    StandardCharsets.UTF_8.newDecoder()
                        .onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT))) {
                Properties props = new Properties();
                props.load(reader);
                TreeMap<String, String> sorted = new TreeMap<>();
                for (String key : props.stringPropertyNames()) {
                    sorted.put(hex(key), hex(props.getProperty(key)));
                }
                out.append("OK");
                for (var e : sorted.entrySet()) {
                    out.append(' ').append(e.getKey()).append('=').append(e.getValue());
                }
            } catch (Exception e) {
                out.append("ERR ").append(e.getClass().getSimpleName());
            }
            System.out.println(out);
            System.out.flush();
        }
    }
}
