//! Identity links from a file, for `aisle link`: one `user,alias` pair per
//! line (comma or tab separated; an optional header `user_id,alias`; gzip
//! read as such). Each line is a link to make or a rejected line with its
//! reason; nothing is read whole into memory.

use std::io::BufRead;
use std::path::Path;

use crate::Result;

/// One line of a links file: a link to make, or why the line is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkLine {
    Link {
        line: u64,
        user: String,
        alias: String,
    },
    Bad {
        line: u64,
        reason: String,
    },
}

/// Calls `f` with every non-empty line of `path`, in file order.
pub fn for_each_link(path: &Path, f: &mut dyn FnMut(LinkLine)) -> Result<()> {
    let input = crate::input::open(path)?;
    for (n, line) in input.reader.lines().enumerate() {
        let line_no = n as u64 + 1;
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                f(LinkLine::Bad {
                    line: line_no,
                    reason: format!("unreadable line: {e}"),
                });
                continue;
            }
        };
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let sep = if line.contains('\t') { '\t' } else { ',' };
        let fields: Vec<&str> = line.split(sep).map(str::trim).collect();
        if line_no == 1
            && matches!(fields.as_slice(), [u, a] if u.starts_with("user") && *a == "alias")
        {
            continue;
        }
        let [user, alias] = fields.as_slice() else {
            f(LinkLine::Bad {
                line: line_no,
                reason: format!("{} fields; a link line is user,alias", fields.len()),
            });
            continue;
        };
        let problem = aisle_core::id_problem(user)
            .map(|w| format!("the user id {w}"))
            .or_else(|| aisle_core::id_problem(alias).map(|w| format!("the alias {w}")));
        f(match problem {
            Some(reason) => LinkLine::Bad {
                line: line_no,
                reason,
            },
            None => LinkLine::Link {
                line: line_no,
                user: user.to_string(),
                alias: alias.to_string(),
            },
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Vec<LinkLine> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("links.csv");
        std::fs::write(&p, text).unwrap();
        let mut out = Vec::new();
        for_each_link(&p, &mut |l| out.push(l)).unwrap();
        out
    }

    #[test]
    fn lines_are_links_or_rejected_with_a_reason() {
        let got = read("user_id,alias\nalice,anon-1\n\nbob\tphone 2\ncarol\nd,e,f\n,x\n");
        assert_eq!(
            got[0],
            LinkLine::Link {
                line: 2,
                user: "alice".into(),
                alias: "anon-1".into()
            }
        );
        assert_eq!(
            got[1],
            LinkLine::Link {
                line: 4,
                user: "bob".into(),
                alias: "phone 2".into()
            }
        );
        for (k, line) in [(2, 5), (3, 6), (4, 7)] {
            assert!(
                matches!(&got[k], LinkLine::Bad { line: l, .. } if *l == line),
                "{got:?}"
            );
        }
        assert_eq!(got.len(), 5);
    }
}
