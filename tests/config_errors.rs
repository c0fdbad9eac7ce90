//! Bad configs: each must exit 2 and name the file, line, column and key, with a message
//! saying what was expected. Driven through the real binary (`config check`).

mod common;
use common::{Scratch, stderr};

/// Asserts `config check` exits 2 with a line `PATH:POS: KEY: ...FRAGMENT...`.
fn expect_error(toml: &str, pos: &str, key: &str, fragment: &str) {
    let scratch = Scratch::new();
    let path = scratch.write_config(toml);
    let out = scratch.run(&[
        "--config",
        path.to_str().expect("utf-8 path"),
        "config",
        "check",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "exit code; stderr:\n{err}");
    let prefix = if key.is_empty() {
        format!("{}:{pos}: ", path.display())
    } else {
        format!("{}:{pos}: {key}: ", path.display())
    };
    assert!(
        err.lines()
            .any(|l| l.starts_with(&prefix) && l.contains(fragment)),
        "expected a line starting with {prefix:?} containing {fragment:?}; stderr:\n{err}"
    );
}

macro_rules! bad_config {
    ($($name:ident: $toml:expr => $pos:expr, $key:expr, $fragment:expr;)+) => {
        $(#[test] fn $name() { expect_error($toml, $pos, $key, $fragment); })+
    };
}

bad_config! {
    notify_command_must_name_a_program:
        "[notify]\ncommand = []\n[bottles.demo]\n"
        => "2:11", "notify.command", "expected at least one word";
    notify_command_must_be_a_list_of_words:
        "[notify]\ncommand = \"notify-send\"\n[bottles.demo]\n"
        => "2:11", "notify.command", "expected an array";
    misspelt_notify_key_suggests_command:
        "[notify]\ncomand = [\"x\"]\n[bottles.demo]\n"
        => "2:1", "notify.comand", "did you mean `command`?";
    needs_you_text_must_not_be_empty:
        "[agents.helper]\nneeds_you = [\"(y/n)\", \"\"]\n[bottles.demo]\nagent = \"helper\"\n"
        => "2:23", "agents.helper.needs_you", "expected text to look for";
    quiet_must_be_a_duration:
        "[agents.helper]\nquiet = \"soon\"\n[bottles.demo]\nagent = \"helper\"\n"
        => "2:9", "agents.helper.quiet", "a duration such as";
    dashboard_bell_must_be_a_boolean:
        "[dashboard]\nbell = \"yes\"\n[bottles.demo]\n"
        => "2:8", "dashboard.bell", "expected true or false, found a string";
    misspelt_dashboard_key_suggests_bell:
        "[dashboard]\nbel = false\n[bottles.demo]\n"
        => "2:1", "dashboard.bel", "did you mean `bell`?";
    unknown_top_level_section_suggests_the_right_one:
        "[bottle.demo]\nallow = []\n"
        => "1:2", "bottle", "did you mean `bottles`?";
    misspelt_bottle_key_suggests_allow:
        "[bottles.demo]\nalow = [\"x.com\"]\n"
        => "2:1", "bottles.demo.alow", "did you mean `allow`?";
    misspelt_agent_key_suggests_image:
        "[agents.claude]\nimgae = \"x\"\n[bottles.demo]\n"
        => "2:1", "agents.claude.imgae", "did you mean `image`?";
    unknown_agent_in_bottle:
        "[bottles.demo]\nagent = \"claud\"\n"
        => "2:9", "bottles.demo.agent", "unknown agent `claud` (defined: claude); did you mean `claude`?";
    unknown_default_agent:
        "[defaults]\nagent = \"helper\"\n[bottles.demo]\n"
        => "2:9", "defaults.agent", "unknown agent `helper`";
    invalid_bottle_name:
        "[bottles.My_Bottle]\n"
        => "1:10", "bottles.My_Bottle", "is not a valid name";
    invalid_agent_name:
        "[agents.\"big agent\"]\n[bottles.demo]\n"
        => "1:9", "agents.big agent", "lowercase letters, digits and '-'";
    wildcard_on_a_top_level_domain_is_too_broad:
        "[bottles.demo]\nallow = [\"*.com\"]\n"
        => "2:10", "bottles.demo.allow[0]", "too broad";
    host_pattern_with_a_scheme:
        "[bottles.demo]\nallow = [\"a.com\", \"https://x.com\"]\n"
        => "2:19", "bottles.demo.allow[1]", "without scheme, port or path";
    ip_literal_in_allow_points_to_allow_private:
        "[bottles.demo]\nallow = [\"10.0.0.1\"]\n"
        => "2:10", "bottles.demo.allow[0]", "use `allow_private`";
    wildcard_in_the_middle:
        "[bottles.demo]\nallow = [\"a.*.com\"]\n"
        => "2:10", "bottles.demo.allow[0]", "only allowed as the whole first label";
    allow_must_be_an_array:
        "[bottles.demo]\nallow = \"x.com\"\n"
        => "2:9", "bottles.demo.allow", "expected an array of strings, found a string";
    route_host_not_in_allowlist:
        "[bottles.demo]\nallow = [\"a.com\"]\n[[bottles.demo.routes]]\nhost = \"api.b.com\"\ntoken_env = \"T\"\n"
        => "4:8", "bottles.demo.routes[0].host", "not in the allow list; add it to bottles.demo.allow";
    route_host_must_not_be_a_wildcard:
        "[bottles.demo]\nallow = [\"*.a.com\"]\n[[bottles.demo.routes]]\nhost = \"*.a.com\"\ntoken_env = \"T\"\n"
        => "4:8", "bottles.demo.routes[0].host", "one exact host, not a wildcard";
    route_with_two_token_sources:
        "[bottles.demo]\nallow = [\"a.com\"]\n[[bottles.demo.routes]]\nhost = \"a.com\"\ntoken_env = \"T\"\ntoken_file = \"t.txt\"\n"
        => "6:14", "bottles.demo.routes[0].token_file", "either `token_env` or `token_file`, not both";
    route_without_token_source:
        "[bottles.demo]\nallow = [\"a.com\"]\n\n[[bottles.demo.routes]]\nhost = \"a.com\"\nplaceholder_env = \"T\"\n"
        => "4:1", "bottles.demo.routes[0].token_env", "missing required key";
    route_format_without_token:
        "[bottles.demo]\nallow = [\"a.com\"]\n[[bottles.demo.routes]]\nhost = \"a.com\"\ntoken_env = \"T\"\nformat = \"Bearer token\"\n"
        => "6:10", "bottles.demo.routes[0].format", "must contain `{token}` exactly once";
    route_header_not_a_header_name:
        "[bottles.demo]\nallow = [\"a.com\"]\n[[bottles.demo.routes]]\nhost = \"a.com\"\ntoken_env = \"T\"\nheader = \"X Api Key\"\n"
        => "6:10", "bottles.demo.routes[0].header", "is not an HTTP header name";
    route_placeholder_not_an_env_name:
        "[bottles.demo]\nallow = [\"a.com\"]\n[[bottles.demo.routes]]\nhost = \"a.com\"\ntoken_file = \"t\"\nplaceholder_env = \"1TOKEN\"\n"
        => "6:19", "bottles.demo.routes[0].placeholder_env", "not an environment variable name";
    duplicate_route_host:
        "[bottles.demo]\nallow = [\"a.com\"]\n[[bottles.demo.routes]]\nhost = \"a.com\"\ntoken_env = \"T\"\n[[bottles.demo.routes]]\nhost = \"a.com\"\ntoken_env = \"U\"\n"
        => "7:8", "bottles.demo.routes[1].host", "duplicate route for `a.com`";
    duplicate_git_name:
        "[bottles.demo]\n[[bottles.demo.git]]\nname = \"web\"\nupstream = \"file://upstream\"\n[[bottles.demo.git]]\nname = \"web\"\nupstream = \"file://upstream\"\n"
        => "6:8", "bottles.demo.git[1].name", "duplicate git upstream name `web`";
    max_per_hour_out_of_range:
        "[bottles.demo]\n[bottles.demo.supervise]\nmax_per_hour = 0\n"
        => "3:16", "bottles.demo.supervise.max_per_hour", "expected an integer from 1 to 100000";
    launch_on_the_sort_key:
        "[bottles.demo]\n[keys]\nlaunch = \"s\"\n"
        => "3:10", "keys.launch", "`s` is already bound to `sort` in the bottles view; remap `sort` too";
    remap_onto_a_second_default_key:
        "[bottles.demo]\n[keys]\nkill = \"j\"\n"
        => "3:8", "keys.kill", "`j` is already bound to `down` in the bottles view";
    max_push_too_small:
        "[bottles.demo]\n[[bottles.demo.git]]\nname = \"web\"\nupstream = \"file://upstream\"\nmax_push = \"10b\"\n"
        => "5:12", "bottles.demo.git[0].max_push", "too small";
    max_push_not_a_size:
        "[bottles.demo]\n[[bottles.demo.git]]\nname = \"web\"\nupstream = \"file://upstream\"\nmax_push = 5\n"
        => "5:12", "bottles.demo.git[0].max_push", "a size such as";
    cidr_with_host_bits_suggests_the_network:
        "[bottles.demo]\nallow_private = [\"10.1.2.3/16\"]\n"
        => "2:18", "bottles.demo.allow_private[0]", "did you mean `10.1.0.0/16`?";
    cidr_prefix_out_of_range:
        "[bottles.demo]\nallow_private = [\"192.168.0.0/24\", \"10.0.0.0/33\"]\n"
        => "2:36", "bottles.demo.allow_private[1]", "not a valid CIDR";
    prompt_file_missing:
        "[agents.claude]\nprompt_file = \"missing.md\"\n[bottles.demo]\n"
        => "2:15", "agents.claude.prompt_file", "no such file or folder";
    prompt_and_prompt_file_both_set:
        "[agents.claude]\nprompt = \"hi\"\nprompt_file = \"prompt.md\"\n[bottles.demo]\n"
        => "3:15", "agents.claude.prompt_file", "either `prompt` or `prompt_file`, not both";
    prompt_file_is_a_folder:
        "[agents.claude]\nprompt_file = \"skills\"\n[bottles.demo]\n"
        => "2:15", "agents.claude.prompt_file", "is not a file";
    identity_file_missing:
        "[bottles.demo]\n[[bottles.demo.git]]\nname = \"web\"\nupstream = \"git@github.com:me/web.git\"\nidentity = \"id_missing\"\n"
        => "5:12", "bottles.demo.git[0].identity", "cannot read";
    ssh_upstream_without_identity:
        "[bottles.demo]\n[[bottles.demo.git]]\nname = \"web\"\nupstream = \"ssh://git@example.com/me/web.git\"\n"
        => "2:1", "bottles.demo.git[0].identity", "is an ssh upstream";
    plain_http_upstream_refused:
        "[bottles.demo]\n[[bottles.demo.git]]\nname = \"web\"\nupstream = \"http://example.com/me/web.git\"\n"
        => "4:12", "bottles.demo.git[0].upstream", "unencrypted";
    password_in_upstream_url_refused:
        "[bottles.demo]\n[[bottles.demo.git]]\nname = \"web\"\nupstream = \"https://me:ghp_s3cret@github.com/me/web.git\"\n"
        => "4:12", "bottles.demo.git[0].upstream", "has a password in the URL";
    known_hosts_on_an_https_upstream_refused:
        "[bottles.demo]\n[[bottles.demo.git]]\nname = \"web\"\nupstream = \"https://github.com/me/web.git\"\nknown_hosts = \"prompt.md\"\n"
        => "5:15", "bottles.demo.git[0].known_hosts", "is not an ssh upstream";
    branch_pattern_invalid:
        "[bottles.demo]\n[[bottles.demo.git]]\nname = \"web\"\nupstream = \"file://upstream\"\npush = [\"bottle/*\", \"a..b\"]\n"
        => "5:21", "bottles.demo.git[0].push[1]", "is not a branch pattern";
    skills_folder_missing:
        "[agents.claude]\nskills = [\"skills/review\", \"skills/nope\"]\n[bottles.demo]\n"
        => "2:28", "agents.claude.skills[1]", "no such file or folder";
    workspace_is_a_file:
        "[bottles.demo]\nworkspace = \"file.txt\"\n"
        => "2:13", "bottles.demo.workspace", "is not a folder";
    memory_not_a_size:
        "[agents.claude]\nmemory = \"lots\"\n[bottles.demo]\n"
        => "2:10", "agents.claude.memory", "is not a size such as";
    pids_out_of_range:
        "[agents.claude]\npids = 5\n[bottles.demo]\n"
        => "2:8", "agents.claude.pids", "expected an integer from 16 to 65535, found 5";
    supervise_timeout_without_unit:
        "[bottles.demo]\n[bottles.demo.supervise]\ntimeout = \"10\"\n"
        => "3:11", "bottles.demo.supervise.timeout", "is not a duration";
    unknown_backend_suggests_docker:
        "[defaults]\nbackend = \"dockr\"\n[bottles.demo]\n"
        => "2:11", "defaults.backend", "did you mean `docker`?";
    pipelock_enabled_without_image:
        "[bottles.demo]\nallow = [\"a.com\"]\n[bottles.demo.pipelock]\nenabled = true\n"
        => "3:1", "bottles.demo.pipelock.image", "missing required key";
    pipelock_image_not_pinned:
        "[bottles.demo]\n[bottles.demo.pipelock]\nenabled = true\nimage = \"ghcr.io/luckypipewrench/pipelock:latest\"\n"
        => "4:9", "bottles.demo.pipelock.image", "is not pinned";
    pipelock_strict_needs_an_allowlist:
        "[bottles.demo]\n[bottles.demo.pipelock]\nenabled = true\nimage = \"p:v2.3.0\"\nmode = \"strict\"\n"
        => "5:8", "bottles.demo.pipelock.mode", "strict mode needs at least one host";
    key_bound_twice:
        "[bottles.demo]\n[keys]\nkill = \"q\"\n"
        => "3:8", "keys.kill", "`q` is already bound to `quit`";
    key_spec_invalid:
        "[bottles.demo]\n[keys]\ndetach = \"hyper-q\"\n"
        => "3:10", "keys.detach", "is not a key such as";
    agent_env_name_invalid:
        "[agents.claude]\nenv = { \"MY-VAR\" = \"1\" }\n[bottles.demo]\n"
        => "2:9", "agents.claude.env.MY-VAR", "not an environment variable name";
    empty_command:
        "[agents.claude]\ncommand = []\n[bottles.demo]\n"
        => "2:11", "agents.claude.command", "at least one word";
    no_bottles_defined:
        "[agents.claude]\nimage = \"x:1\"\n"
        => "1:1", "bottles", "no bottles defined";
    wrong_type_for_a_table:
        "[bottles]\ndemo = 3\n"
        => "2:8", "bottles.demo", "expected a table, found an integer";
    intercept_needs_an_allowed_host:
        "[bottles.demo]\nallow = [\"a.com\"]\nintercept = [\"b.com\"]\n"
        => "3:14", "bottles.demo.intercept[0]", "only allowed hosts can be intercepted";
    toml_syntax_error_unclosed_array:
        "[bottles.demo]\nallow = [\"a.com\"\n"
        => "2:17", "", "invalid TOML";
    toml_duplicate_table:
        "[bottles.demo]\n[bottles.demo]\n"
        => "2:10", "", "duplicate key at `demo`";
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let scratch = Scratch::new();
    let path = scratch.write_config(
        "[bottles.demo]\nalow = []\nallow = [\"*.com\"]\n[bottles.demo.supervise]\ntimeout = \"x\"\n",
    );
    let out = scratch.run(&["--config", path.to_str().expect("utf-8"), "config", "check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 3, "{err}");
    let positions: Vec<&str> = err
        .lines()
        .map(|l| l.split(": ").next().unwrap_or(""))
        .collect();
    let p = path.display();
    assert_eq!(
        positions,
        [format!("{p}:2:1"), format!("{p}:3:10"), format!("{p}:5:11")]
    );
}

#[test]
fn check_json_lists_errors_with_locations() {
    let scratch = Scratch::new();
    let path = scratch.write_config("[bottles.demo]\nalow = []\n");
    let out = scratch.run(&[
        "--config",
        path.to_str().expect("utf-8"),
        "config",
        "check",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json on stdout");
    assert_eq!(v["ok"], false);
    assert_eq!(v["errors"][0]["line"], 2);
    assert_eq!(v["errors"][0]["column"], 1);
    assert_eq!(v["errors"][0]["key"], "bottles.demo.alow");
}

#[test]
fn a_valid_config_checks_clean() {
    let scratch = Scratch::new();
    let path = scratch.write_config(
        "[agents.claude]\nprompt_file = \"prompt.md\"\nskills = [\"skills/review\"]\n\
         [bottles.demo]\nworkspace = \".\"\nallow = [\"a.com\"]\n\
         [[bottles.demo.git]]\nname = \"web\"\nupstream = \"git@h.com:me/web.git\"\nidentity = \"id_web\"\n",
    );
    let out = scratch.run(&["--config", path.to_str().expect("utf-8"), "config", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json = scratch.run(&[
        "--config",
        path.to_str().expect("utf-8"),
        "config",
        "check",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json on stdout");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["errors"], serde_json::json!([]), "{v}");
    // And what was read is what the file says, with the defaults filled in.
    let config = bottle_tui::config::load(&path).expect("loads");
    let demo = config.bottles.values().next().expect("bottle demo");
    assert_eq!(demo.name.as_str(), "demo");
    assert_eq!(
        demo.allow
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["a.com"]
    );
    assert_eq!(demo.workspace.as_deref(), Some(scratch.path()));
    assert_eq!(demo.git.len(), 1);
    assert_eq!(demo.git[0].name.as_str(), "web");
    assert_eq!(demo.git[0].push, ["bottle/*"], "the default push pattern");
    assert_eq!(demo.git[0].max_push.0, 512 << 20, "the default push limit");
    assert!(demo.supervise.enabled);
    let agent = &config.agents[&demo.agent];
    assert_eq!(agent.skills.len(), 1);
}

#[test]
fn duplicates_are_reported_with_the_other_errors_of_their_tables() {
    // Before: the missing paths hid the duplicate names until they were fixed.
    let scratch = Scratch::new();
    let path = scratch.write_config(
        "[bottles.demo]\nallow = [\"a.com\"]\n\
         [[bottles.demo.git]]\nname = \"web\"\nupstream = \"file:///nonexistent/one\"\n\
         [[bottles.demo.git]]\nname = \"web\"\nupstream = \"file:///nonexistent/two\"\n\
         [[bottles.demo.routes]]\nhost = \"a.com\"\ntoken_file = \"missing.token\"\n\
         [[bottles.demo.routes]]\nhost = \"A.com\"\ntoken_file = \"missing.token\"\n",
    );
    let out = scratch.run(&["--config", path.to_str().expect("utf-8"), "config", "check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for fragment in [
        "git[0].upstream: cannot read `/nonexistent/one`",
        "git[1].name: duplicate git upstream name `web`",
        "git[1].upstream: cannot read `/nonexistent/two`",
        "routes[0].placeholder_env: missing required key",
        "routes[1].host: duplicate route for `a.com`",
        "routes[1].placeholder_env: missing required key",
    ] {
        assert!(err.contains(fragment), "{fragment:?} missing from:\n{err}");
    }
}
